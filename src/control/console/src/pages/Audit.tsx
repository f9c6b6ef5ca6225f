import type { AuditEntry } from '../api.ts';
import { when } from '../format.ts';
import { Filters, Pager, TimeFilter, useListQuery, usePagedList } from '../list.tsx';

/** The audit log (admins): every change made through the API, CLI or console, searched and paged by the server. */
export function Audit() {
  const list = useListQuery({ actor: '', action: '', q: '', outcome: '', since: '', until: '' }, 25);
  const { filters, set } = list;
  const { data, error } = usePagedList<AuditEntry>('/api/audit', list, 5000);
  return (
    <>
      <h1>Audit log</h1>
      <Filters id="audit-filters">
        <label>
          Search{' '}
          <input
            name="q"
            type="search"
            value={filters.q}
            onChange={set('q')}
            placeholder="who, what, object, address"
          />
        </label>
        <label>
          Who <input name="actor" value={filters.actor} onChange={set('actor')} placeholder="token name" />
        </label>
        <label>
          Action{' '}
          <input name="action" value={filters.action} onChange={set('action')} placeholder="DELETE, /api/tokens" />
        </label>
        <label>
          Outcome{' '}
          <select name="outcome" value={filters.outcome} onChange={set('outcome')}>
            <option value="">any</option>
            <option value="ok">accepted</option>
            <option value="refused">refused</option>
          </select>
        </label>
        <TimeFilter label="From" name="since" value={filters.since} onChange={set('since')} />
        <TimeFilter label="Until" name="until" value={filters.until} onChange={set('until')} />
      </Filters>
      {error && <p className="error">{error}</p>}
      {data && (
        <>
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
              {data.items.map((a) => (
                <tr key={a.id} className={a.status >= 400 ? 'refused' : ''}>
                  <td data-label="When">{when(a.at)}</td>
                  <td data-label="Who">
                    {a.actor ?? '–'} {a.actorRole ? `(${a.actorRole})` : ''}
                  </td>
                  <td data-label="What">
                    {a.action}
                    {a.target ? ` ${a.target}` : ''}
                    {a.details && Object.keys(a.details).length > 0 && (
                      <details>
                        <summary>request</summary>
                        <pre>{JSON.stringify(a.details, null, 2)}</pre>
                      </details>
                    )}
                  </td>
                  <td data-label="Status">{a.status}</td>
                  <td data-label="From">
                    {a.ip} {a.via}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager
            list={list}
            shown={data.items.length}
            total={data.total}
            id="audit-page-info"
            none="No change matches"
          />
        </>
      )}
    </>
  );
}
