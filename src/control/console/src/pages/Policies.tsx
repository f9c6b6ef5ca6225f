import { useState, type FormEvent } from 'react';
import { call, get, type Policy, type Vm } from '../api.ts';
import { whenIn, zone } from '../format.ts';
import { usePoll } from '../hooks.ts';
import { Filters, Pager, useListQuery, usePagedList } from '../list.tsx';
import { errorMessage } from '../../../../util/errors.ts';

const RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

function describeSelection(p: Policy, vms: Vm[]): string {
  const s = p.selection;
  const parts: string[] = [];
  if (s.vmIds?.length)
    parts.push(`VMs ${s.vmIds.map((id) => vms.find((v) => v.id === id)?.name ?? id.split('/').pop()).join(', ')}`);
  if (s.resourceGroups?.length) parts.push(`resource groups ${s.resourceGroups.join(', ')}`);
  if (s.tags && Object.keys(s.tags).length)
    parts.push(
      `tags ${Object.entries(s.tags)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}`,
    );
  return parts.join('; ') || 'nothing';
}

function describeRetention(p: Policy): string {
  return (
    RULES.filter((k) => p.retention[k] !== undefined)
      .map((k) => (k === 'last' ? `last ${p.retention[k]}` : `${p.retention[k]} ${k}`))
      .join(', ') || 'everything'
  );
}

export function Policies() {
  const list = useListQuery({ q: '', enabled: '' }, 20);
  const { filters, set } = list;
  const { data: page, error, reload } = usePagedList<Policy>('/api/policies', list, 5000);
  const { data: vms } = usePoll(() => get<Vm[]>('/api/vms?limit=1000'), 10_000);
  const data = page && vms ? { policies: page.items, total: page.total, vms } : undefined;
  const [editing, setEditing] = useState<Policy | 'new'>();
  const [message, setMessage] = useState<string>();
  const act = async (what: () => Promise<unknown>, done: string) => {
    try {
      await what();
      setMessage(done);
      reload();
    } catch (err) {
      setMessage(errorMessage(err));
    }
  };
  if (!data) return <p className={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;
  return (
    <>
      <h1>Policies</h1>
      {message && (
        <p id="message" role="status">
          {message}
        </p>
      )}
      <p>
        <button type="button" id="new-policy" onClick={() => setEditing('new')}>
          New policy
        </button>
      </p>
      <Filters id="policy-filters">
        <label>
          Search <input name="q" type="search" value={filters.q} onChange={set('q')} placeholder="name or schedule" />
        </label>
        <label>
          State{' '}
          <select name="enabled" value={filters.enabled} onChange={set('enabled')}>
            <option value="">any</option>
            <option value="true">active</option>
            <option value="false">paused</option>
          </select>
        </label>
      </Filters>
      {editing && (
        <PolicyForm
          policy={editing === 'new' ? undefined : editing}
          vms={data.vms}
          onDone={(text) => {
            setEditing(undefined);
            setMessage(text);
            reload();
          }}
          onCancel={() => setEditing(undefined)}
        />
      )}
      <table id="policies">
        <thead>
          <tr>
            <th>Name</th>
            <th>Schedule</th>
            <th>Selects</th>
            <th>Keeps</th>
            <th>Next run</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {data.policies.map((p) => (
            <tr key={p.id} className={p.enabled ? '' : 'paused'}>
              <td data-label="Name">{p.name}</td>
              <td data-label="Schedule">
                <code>{p.cron}</code>
              </td>
              <td data-label="Selects">{describeSelection(p, data.vms)}</td>
              <td data-label="Keeps">{describeRetention(p)}</td>
              <td data-label="Next run">
                {p.enabled ? (p.nextRuns[0] ? whenIn(p.nextRuns[0], p.timeZone) : '') : 'paused'}
              </td>
              <td className="actions">
                <button type="button" onClick={() => setEditing(p)}>
                  Edit
                </button>
                <button
                  type="button"
                  onClick={() =>
                    void act(
                      () => call('PATCH', `/api/policies/${p.id}`, { enabled: !p.enabled }),
                      `${p.name} ${p.enabled ? 'paused' : 'resumed'}`,
                    )
                  }
                >
                  {p.enabled ? 'Pause' : 'Resume'}
                </button>
                <button
                  type="button"
                  className="danger"
                  onClick={() => {
                    if (window.confirm(`Delete policy ${p.name}? Its recovery points stay.`))
                      void act(() => call('DELETE', `/api/policies/${p.id}`), `${p.name} deleted`);
                  }}
                >
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager
        list={list}
        shown={data.policies.length}
        total={data.total}
        id="policy-page-info"
        none="No policy matches"
      />
    </>
  );
}

function PolicyForm({
  policy,
  vms,
  onDone,
  onCancel,
}: {
  policy?: Policy;
  vms: Vm[];
  onDone: (message: string) => void;
  onCancel: () => void;
}) {
  const [error, setError] = useState<{ message: string; field?: string }>();
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const text = (k: string) => String(f.get(k) ?? '').trim();
    const list = (k: string) =>
      text(k)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    const tags = Object.fromEntries(list('tags').map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)]));
    const retention = Object.fromEntries(
      RULES.filter((k) => text(`keep-${k}`) !== '').map((k) => [k, Number(text(`keep-${k}`))]),
    );
    const vmIds = f.getAll('vm').map(String);
    const body = {
      name: text('name'),
      cron: text('cron'),
      timeZone: text('timeZone'),
      retention,
      selection: {
        ...(vmIds.length ? { vmIds } : {}),
        ...(list('resourceGroups').length ? { resourceGroups: list('resourceGroups') } : {}),
        ...(Object.keys(tags).length ? { tags } : {}),
      },
    };
    try {
      if (policy) await call('PATCH', `/api/policies/${policy.id}`, body);
      else await call('POST', '/api/policies', body);
      onDone(`${body.name} ${policy ? 'saved' : 'created'}`);
    } catch (err) {
      setError({ message: errorMessage(err), field: (err as { field?: string }).field });
    }
  };
  const s = policy?.selection;
  return (
    <form id="policy-form" className="panel" onSubmit={submit}>
      <h2>{policy ? `Edit ${policy.name}` : 'New policy'}</h2>
      <label>
        Name <input name="name" required defaultValue={policy?.name} />
      </label>
      <label>
        Schedule (cron) <input name="cron" required defaultValue={policy?.cron ?? '0 2 * * *'} />
      </label>
      <label>
        Time zone <input name="timeZone" required defaultValue={policy?.timeZone ?? zone} />
      </label>
      <fieldset>
        <legend>Selects</legend>
        <div className="checks">
          {vms.map((vm) => (
            <label key={vm.id}>
              <input type="checkbox" name="vm" value={vm.id} defaultChecked={s?.vmIds?.includes(vm.id)} /> {vm.name}
            </label>
          ))}
        </div>
        <label>
          or resource groups{' '}
          <input name="resourceGroups" defaultValue={s?.resourceGroups?.join(', ')} placeholder="rg-prod, rg-web" />
        </label>
        <label>
          with tags{' '}
          <input
            name="tags"
            defaultValue={Object.entries(s?.tags ?? {})
              .map(([k, v]) => `${k}=${v}`)
              .join(', ')}
            placeholder="env=prod"
          />
        </label>
      </fieldset>
      <fieldset className="keep">
        <legend>Keeps</legend>
        {RULES.map((k) => (
          <label key={k}>
            {k} <input name={`keep-${k}`} type="number" min="0" defaultValue={policy?.retention[k]} />
          </label>
        ))}
      </fieldset>
      {error && (
        <p className="error" id="form-error" role="alert">
          {error.message}
        </p>
      )}
      <p>
        <button type="submit">{policy ? 'Save' : 'Create'}</button>{' '}
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </p>
    </form>
  );
}
