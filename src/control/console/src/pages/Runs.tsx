import { get, type Run } from '../api.ts';
import { bytes, duration, when } from '../format.ts';
import { usePoll } from '../hooks.ts';
import { Filters, Pager, TimeFilter, useListQuery, usePagedList } from '../list.tsx';

const PAGE = 20;

function progressOf(r: Run): { done: number; total: number } {
  return { done: r.disks.reduce((n, d) => n + d.bytesDone, 0), total: r.disks.reduce((n, d) => n + d.bytesTotal, 0) };
}

export function Runs() {
  const list = useListQuery({ status: '', kind: '', trigger: '', q: '', since: '', until: '' }, PAGE);
  const { filters, set } = list;
  const { data, error } = usePagedList<Run>('/api/runs', list, 2000);
  return (
    <>
      <h1>Runs</h1>
      <Filters id="run-filters">
        <label>
          Search{' '}
          <input name="q" type="search" value={filters.q} onChange={set('q')} placeholder="VM, run id or error" />
        </label>
        <label>
          Status{' '}
          <select name="status" value={filters.status} onChange={set('status')}>
            <option value="">any</option>
            <option value="running">running</option>
            <option value="succeeded">succeeded</option>
            <option value="failed">failed</option>
          </select>
        </label>
        <label>
          Kind{' '}
          <select name="kind" value={filters.kind} onChange={set('kind')}>
            <option value="">any</option>
            <option value="full">full</option>
            <option value="incremental">incremental</option>
          </select>
        </label>
        <label>
          Started by{' '}
          <select name="trigger" value={filters.trigger} onChange={set('trigger')}>
            <option value="">anyone</option>
            <option value="policy">a policy</option>
            <option value="user">a user</option>
          </select>
        </label>
        <TimeFilter label="From" name="since" value={filters.since} onChange={set('since')} />
        <TimeFilter label="Until" name="until" value={filters.until} onChange={set('until')} />
      </Filters>
      {error && <p className="error">{error}</p>}
      {data && (
        <>
          <table id="runs">
            <thead>
              <tr>
                <th>VM</th>
                <th>Status</th>
                <th>Kind</th>
                <th>Started by</th>
                <th>Read</th>
                <th>Stored</th>
                <th>Took</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {data.items.map((r) => {
                const p = progressOf(r);
                const finished = r.step === 'succeeded' || r.step === 'failed';
                return (
                  <tr key={r.id}>
                    <td data-label="VM">
                      <a href={`#/runs/${r.id}`}>{r.vmName}</a>
                    </td>
                    <td data-label="Status" className={`step ${r.step}`}>
                      {finished ? (
                        r.step
                      ) : (
                        <>
                          {r.step} <progress value={p.done} max={Math.max(1, p.total)} />
                        </>
                      )}
                    </td>
                    <td data-label="Kind">{r.summary?.kind ?? '–'}</td>
                    <td data-label="Started by">{r.summary?.trigger === 'policy' ? 'policy' : 'user'}</td>
                    <td data-label="Read">{bytes(r.summary?.readBytes ?? 0)}</td>
                    <td data-label="Stored">{bytes(r.summary?.storedBytes ?? 0)}</td>
                    <td data-label="Took">{duration(r.summary?.durationMs)}</td>
                    <td data-label="Created">{when(r.createdAt)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <Pager list={list} shown={data.items.length} total={data.total} id="page-info" none="No run matches" />
        </>
      )}
    </>
  );
}

export function RunDetail({ id }: { id: string }) {
  const { data: r, error } = usePoll(() => get<Run>(`/api/runs/${encodeURIComponent(id)}`), 2000, [id]);
  if (!r) return <p className={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;
  const finished = r.step === 'succeeded' || r.step === 'failed';
  const readBytes = r.disks.reduce((n, d) => n + (d.stats?.readBytes ?? 0), 0);
  const stored = r.disks.reduce((n, d) => n + (d.stats?.newStoredBytes ?? 0), 0);
  const events: Array<[string, string]> = [
    [r.createdAt, r.scheduledFor ? `created by its policy for ${when(r.scheduledFor)}` : 'created by a user'],
    ...(r.startedAt ? [[r.startedAt, 'started: snapshots of every disk'] as [string, string]] : []),
    ...(r.finishedAt
      ? [
          [
            r.finishedAt,
            r.step === 'succeeded'
              ? `recovery point ${r.recoveryPointId?.slice(0, 12) ?? ''} committed`
              : `failed: ${r.error ?? ''}`,
          ] as [string, string],
        ]
      : []),
  ];
  return (
    <>
      <p>
        <a href="#/runs">← Runs</a>
      </p>
      <h1 id="run-title">Run of {r.vmName}</h1>
      <dl className="facts" id="run-facts">
        <dt>Status</dt>
        <dd className={`step ${r.step}`}>{r.step}</dd>
        <dt>Id</dt>
        <dd>
          <code>{r.id}</code>
        </dd>
        {r.consistency && (
          <>
            <dt>Consistency</dt>
            <dd>{r.consistency}</dd>
          </>
        )}
        <dt>Read</dt>
        <dd>{bytes(readBytes)}</dd>
        <dt>Stored</dt>
        <dd>{bytes(stored)}</dd>
        {r.finishedAt && (
          <>
            <dt>Took</dt>
            <dd>{duration(Date.parse(r.finishedAt) - Date.parse(r.startedAt ?? r.createdAt))}</dd>
          </>
        )}
        {r.recoveryPointId && (
          <>
            <dt>Recovery point</dt>
            <dd>
              <a href={`#/restore/${r.recoveryPointId}`}>{r.recoveryPointId.slice(0, 12)}</a> (restore) ·{' '}
              <a id="point-files" href={`#/files/${r.recoveryPointId}`}>
                files
              </a>
            </dd>
          </>
        )}
      </dl>
      {r.error && (
        <p className="error" id="run-error">
          {r.error}
        </p>
      )}
      {r.warnings?.map((w) => (
        <p className="warning" key={w}>
          warning: {w}
        </p>
      ))}
      <h2>Disks</h2>
      <table id="run-disks">
        <thead>
          <tr>
            <th>Disk</th>
            <th>Size</th>
            <th>Kind</th>
            <th>Progress</th>
            <th>Read</th>
            <th>New chunks</th>
            <th>Error</th>
          </tr>
        </thead>
        <tbody>
          {r.disks.map((d) => (
            <tr key={d.diskId}>
              <td data-label="Disk">{d.diskName}</td>
              <td data-label="Size">{bytes(d.sizeBytes)}</td>
              <td data-label="Kind">{d.incremental === undefined ? '–' : d.incremental ? 'incremental' : 'full'}</td>
              <td data-label="Progress">
                {finished ? (
                  d.error ? (
                    'failed'
                  ) : (
                    'done'
                  )
                ) : (
                  <progress value={d.bytesDone} max={Math.max(1, d.bytesTotal)} />
                )}
              </td>
              <td data-label="Read">{d.stats ? bytes(d.stats.readBytes) : ''}</td>
              <td data-label="New chunks">
                {d.stats ? `${d.stats.newChunks} (${bytes(d.stats.newStoredBytes)})` : ''}
              </td>
              <td data-label="Error">{d.error ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Events</h2>
      <ol className="events" id="run-events">
        {events.map(([at, what]) => (
          <li key={at + what}>
            <time dateTime={at}>{when(at)}</time> {what}
          </li>
        ))}
      </ol>
    </>
  );
}
