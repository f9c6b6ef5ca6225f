import { useState, type FormEvent } from 'react';
import { call, get, type AuditEntry, type Token } from '../api.ts';
import { when } from '../format.ts';
import { usePoll } from '../hooks.ts';
import { errorMessage } from '../../../../util/errors.ts';

export function Tokens() {
  const { data, error, reload } = usePoll(
    async () => ({ tokens: await get<Token[]>('/api/tokens'), audit: await get<AuditEntry[]>('/api/audit?limit=20') }),
    5000,
  );
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
      <table id="tokens">
        <thead>
          <tr>
            <th>Name</th>
            <th>Role</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {data.tokens.map((t) => (
            <tr key={t.id}>
              <td data-label="Name">{t.name}</td>
              <td data-label="Role">{t.role}</td>
              <td data-label="Created">{when(t.createdAt)}</td>
              <td>
                <button type="button" className="danger" onClick={() => void revoke(t)}>
                  Revoke
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Recent changes (audit log)</h2>
      <table id="audit">
        <thead>
          <tr>
            <th>When</th>
            <th>Who</th>
            <th>What</th>
            <th>Status</th>
            <th>From</th>
          </tr>
        </thead>
        <tbody>
          {data.audit.map((a) => (
            <tr key={a.id}>
              <td data-label="When">{when(a.at)}</td>
              <td data-label="Who">
                {a.actor ?? '–'} {a.actorRole ? `(${a.actorRole})` : ''}
              </td>
              <td data-label="What">
                {a.action}
                {a.target ? ` ${a.target}` : ''}
              </td>
              <td data-label="Status">{a.status}</td>
              <td data-label="From">
                {a.ip} {a.via}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
