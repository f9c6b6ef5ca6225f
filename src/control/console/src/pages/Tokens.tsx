import { useState, type FormEvent } from 'react';
import { call, type Token } from '../api.ts';
import { when } from '../format.ts';
import { Filters, Pager, useListQuery, usePagedList } from '../list.tsx';
import { errorMessage } from '../../../../util/errors.ts';

export function Tokens() {
  const list = useListQuery({ q: '', role: '', kind: '' }, 20);
  const { filters, set } = list;
  const { data, error, reload } = usePagedList<Token>('/api/tokens', list, 5000);
  const [created, setCreated] = useState<{ token: string; info: Token }>();
  const [message, setMessage] = useState<string>();
  const create = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    try {
      const { data: made } = await call<{ token: string; info: Token }>('POST', '/api/tokens', {
        name: String(f.get('name')).trim(),
        role: String(f.get('role')),
      });
      setCreated(made);
      setMessage(undefined);
      form.reset();
      reload();
    } catch (err) {
      setMessage(errorMessage(err));
    }
  };
  const revoke = async (t: Token) => {
    if (!window.confirm(`Revoke token ${t.name}? Whatever uses it stops working at once.`)) return;
    try {
      await call('DELETE', `/api/tokens/${t.id}`);
      setMessage(`${t.name} revoked`);
      reload();
    } catch (err) {
      setMessage(errorMessage(err));
    }
  };
  if (!data) return <p className={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;
  return (
    <>
      <h1>API tokens</h1>
      <form id="token-form" className="panel inline" onSubmit={create}>
        <label>
          Name <input name="name" required />
        </label>
        <label>
          Role{' '}
          <select name="role" defaultValue="viewer">
            <option>viewer</option>
            <option>operator</option>
            <option>admin</option>
          </select>
        </label>
        <button type="submit">Create token</button>
      </form>
      {created && (
        <p id="new-token" className="panel">
          Token <b>{created.info.name}</b> ({created.info.role}) — copy it now, it is not shown again:{' '}
          <code>{created.token}</code>
        </p>
      )}
      {message && (
        <p id="message" role="status">
          {message}
        </p>
      )}
      <Filters id="token-filters">
        <label>
          Search <input name="q" type="search" value={filters.q} onChange={set('q')} placeholder="name or id" />
        </label>
        <label>
          Role{' '}
          <select name="role" value={filters.role} onChange={set('role')}>
            <option value="">any</option>
            <option value="viewer">viewer</option>
            <option value="operator">operator</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <label>
          Kind{' '}
          <select name="kind" value={filters.kind} onChange={set('kind')}>
            <option value="">any</option>
            <option value="lasting">lasting</option>
            <option value="session">console sign-ins</option>
          </select>
        </label>
      </Filters>
      <table id="tokens">
        <thead>
          <tr>
            <th>Name</th>
            <th>Role</th>
            <th>Created</th>
            <th>Expires</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {data.items.map((t) => (
            <tr key={t.id}>
              <td data-label="Name">{t.name}</td>
              <td data-label="Role">{t.role}</td>
              <td data-label="Created">{when(t.createdAt)}</td>
              <td data-label="Expires">{t.expiresAt ? when(t.expiresAt) : 'never'}</td>
              <td>
                <button type="button" className="danger" onClick={() => void revoke(t)}>
                  Revoke
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager list={list} shown={data.items.length} total={data.total} id="token-page-info" none="No token matches" />
      <p>
        Every change made through the API is in the <a href="#/audit">audit log</a>.
      </p>
    </>
  );
}
