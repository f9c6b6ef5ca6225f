import { useState } from 'react';
import { call, get, type Policy, type RecoveryPointEntry, type RepositoryCheck, type Run, type Vm } from '../api.ts';
import { DailyChart } from '../components/DailyChart.tsx';
import { bytes, duration, percent, when } from '../format.ts';
import { usePoll } from '../hooks.ts';
import { Filters, Pager, useListQuery, usePagedList } from '../list.tsx';
import { errorMessage } from '../../../../util/errors.ts';

interface Overview {
  protectedVms: number;
  unprotectedVms: number;
  checks: RepositoryCheck[];
  running: Run[];
  rate: Record<'day' | 'week', { ok: number; failed: number }>;
  perDay: Array<{ day: string; read: number; stored: number }>;
  repositoryBytes?: number;
  logicalBytes: number;
}

function selects(p: Policy, vm: Vm): boolean {
  const s = p.selection;
  if (s.vmIds?.some((id) => id.toLowerCase() === vm.id.toLowerCase())) return true;
  if (!s.tags && !s.resourceGroups) return false;
  if (s.resourceGroups && !s.resourceGroups.some((rg) => rg.toLowerCase() === vm.resourceGroup.toLowerCase()))
    return false;
  return !s.tags || Object.entries(s.tags).every(([k, v]) => vm.tags[k] === v);
}

/** How many items a list route counts for `query`, without fetching them. */
async function total(path: string, query: string): Promise<number> {
  return Number((await call<unknown[]>('GET', `${path}?limit=1&${query}`)).headers.get('x-total-count') ?? 0);
}

async function loadOverview(): Promise<Overview> {
  const dayAgo = new Date(Date.now() - 86_400_000).toISOString();
  const weekAgo = new Date(Date.now() - 7 * 86_400_000).toISOString();
  const runs = (query: string) => total('/api/runs', query);
  const [protectedVms, unprotectedVms, checks, running, week, points, metrics, dayOk, dayFailed, weekOk, weekFailed] =
    await Promise.all([
      total('/api/vms', 'protected=true'),
      total('/api/vms', 'protected=false'),
      get<RepositoryCheck[]>('/api/checks?limit=5').catch(() => []),
      get<Run[]>('/api/runs?status=running'),
      get<Run[]>(`/api/runs?status=finished&limit=1000&since=${encodeURIComponent(weekAgo)}`),
      get<RecoveryPointEntry[]>('/api/recovery-points?limit=1000'),
      get<string>('/metrics').catch(() => ''),
      runs(`status=succeeded&since=${encodeURIComponent(dayAgo)}`),
      runs(`status=failed&since=${encodeURIComponent(dayAgo)}`),
      runs(`status=succeeded&since=${encodeURIComponent(weekAgo)}`),
      runs(`status=failed&since=${encodeURIComponent(weekAgo)}`),
    ]);
  const days = new Map<string, { read: number; stored: number }>();
  for (let i = 6; i >= 0; i--)
    days.set(new Date(Date.now() - i * 86_400_000).toLocaleDateString('en-CA'), { read: 0, stored: 0 });
  for (const r of week) {
    const d = days.get(new Date(r.createdAt).toLocaleDateString('en-CA'));
    if (d) {
      d.read += r.summary?.readBytes ?? 0;
      d.stored += r.summary?.storedBytes ?? 0;
    }
  }
  const repo = /^goldsnap_repository_bytes (\d+)/m.exec(metrics)?.[1];
  return {
    protectedVms,
    unprotectedVms,
    checks,
    running,
    rate: { day: { ok: dayOk, failed: dayFailed }, week: { ok: weekOk, failed: weekFailed } },
    perDay: [...days].map(([day, v]) => ({ day, ...v })),
    ...(repo ? { repositoryBytes: Number(repo) } : {}),
    logicalBytes: points.reduce((n, p) => n + p.point.disks.reduce((m, d) => m + d.sizeBytes, 0), 0),
  };
}

export function Dashboard() {
  const { data, error } = usePoll(loadOverview, 2000);
  if (!data) return <p className={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;
  const lastCheck = data.checks.find((c) => c.state !== 'running');
  return (
    <>
      <h1>Dashboard</h1>
      {error && <p className="error">{error}</p>}
      <section className="cards">
        <div className="card" id="card-protected">
          <b>{data.protectedVms}</b> VMs protected<small>{data.unprotectedVms} unprotected</small>
        </div>
        <div className="card" id="card-day">
          <b>{percent(data.rate.day.ok, data.rate.day.ok + data.rate.day.failed)}</b> succeeded, last 24 h
          <small>
            {data.rate.day.ok} ok, {data.rate.day.failed} failed
          </small>
        </div>
        <div className="card" id="card-week">
          <b>{percent(data.rate.week.ok, data.rate.week.ok + data.rate.week.failed)}</b> succeeded, last 7 days
          <small>
            {data.rate.week.ok} ok, {data.rate.week.failed} failed
          </small>
        </div>
        <div className="card" id="card-repo">
          <b>{data.repositoryBytes === undefined ? '–' : bytes(data.repositoryBytes)}</b> repository
          <small>
            {data.repositoryBytes
              ? `${(data.logicalBytes / data.repositoryBytes).toFixed(1)}× disk data per byte stored`
              : ''}
          </small>
        </div>
        <div className="card" id="card-check">
          <b className={lastCheck?.state === 'failed' ? 'bad' : ''}>{lastCheck ? lastCheck.state : '–'}</b> last
          repository check
          <small>{lastCheck ? when(lastCheck.finishedAt ?? lastCheck.startedAt) : 'none yet'}</small>
        </div>
      </section>

      <section>
        <h2>Data read and stored per day</h2>
        <DailyChart days={data.perDay} />
      </section>

      <section id="running">
        <h2>Running now</h2>
        {data.running.length === 0 ? (
          <p className="muted">No backup is running.</p>
        ) : (
          <ul className="transfers">
            {data.running.map((r) => {
              const done = r.disks.reduce((n, d) => n + d.bytesDone, 0);
              const all = r.disks.reduce((n, d) => n + d.bytesTotal, 0);
              const seconds = (Date.now() - Date.parse(r.startedAt ?? r.createdAt)) / 1000;
              const speed = seconds > 0 ? done / seconds : 0;
              return (
                <li key={r.id}>
                  <a href={`#/runs/${r.id}`}>{r.vmName}</a> {r.step}
                  <progress value={done} max={Math.max(1, all)} />
                  <small>
                    {bytes(done)} of {bytes(all)}
                    {speed > 0 ? `, ${bytes(speed)}/s, about ${duration(((all - done) / speed) * 1000)} left` : ''}
                  </small>
                </li>
              );
            })}
          </ul>
        )}
      </section>

      <Checks checks={data.checks} />
      <VmList />
      <p className="muted small">Updated {when(new Date().toISOString())}</p>
    </>
  );
}

/** The latest repository checks the server ran, and starting one (admins). */
function Checks({ checks }: { checks: RepositoryCheck[] }) {
  const [message, setMessage] = useState<string>();
  const checkNow = async () => {
    try {
      const { data } = await call<RepositoryCheck>('POST', '/api/checks', {});
      setMessage(`Check ${data.id} started`);
    } catch (err) {
      setMessage(errorMessage(err));
    }
  };
  return (
    <section id="checks">
      <h2>Repository checks</h2>
      <p>
        <button type="button" onClick={() => void checkNow()}>
          Check now
        </button>{' '}
        {message && <span id="check-message">{message}</span>}
      </p>
      {checks.length === 0 ? (
        <p className="muted">No check has run yet: the server checks the repository on its schedule.</p>
      ) : (
        <table id="check-list">
          <thead>
            <tr>
              <th>Started</th>
              <th>Result</th>
              <th>Data read</th>
              <th>Found</th>
            </tr>
          </thead>
          <tbody>
            {checks.map((c) => (
              <tr key={c.id}>
                <td data-label="Started">
                  {when(c.startedAt)} {c.scheduledFor ? '' : '(by hand)'}
                </td>
                <td data-label="Result" className={`step ${c.state === 'passed' ? 'succeeded' : c.state}`}>
                  {c.state}
                </td>
                <td data-label="Data read">{c.readData === 'none' ? 'metadata only' : `${c.readData} of packs`}</td>
                <td data-label="Found">
                  {c.errors.length ? c.errors[0] : `${c.packs} packs, ${c.recoveryPoints} recovery points`}
                  {c.errors.length > 1 ? ` (+${c.errors.length - 1} more)` : ''}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** The VMs of the inventory: searched, filtered and paged by the server. */
function VmList() {
  const list = useListQuery({ q: '', protected: '', region: '' }, 20);
  const { filters, set } = list;
  const { data, error, reload } = usePagedList<Vm>('/api/vms', list, 2000);
  const { data: policies } = usePoll(() => get<Policy[]>('/api/policies?limit=1000'), 5000);
  const [message, setMessage] = useState<string>();
  const backUp = async (vm: Vm) => {
    try {
      const { data: run } = await call<Run>('POST', '/api/runs', { vmId: vm.id });
      setMessage(`Backup of ${vm.name} started (run ${run.id.slice(0, 8)})`);
      reload();
    } catch (err) {
      setMessage(errorMessage(err));
    }
  };
  const protectedBy = (vm: Vm) => (policies ?? []).filter((p) => p.enabled && selects(p, vm)).map((p) => p.name);
  return (
    <section>
      <h2>VMs</h2>
      <Filters id="vm-filters">
        <label>
          Search <input name="q" type="search" value={filters.q} onChange={set('q')} placeholder="name, group, tag" />
        </label>
        <label>
          Protected{' '}
          <select name="protected" value={filters.protected} onChange={set('protected')}>
            <option value="">any</option>
            <option value="true">protected</option>
            <option value="false">unprotected</option>
          </select>
        </label>
        <label>
          Region <input name="region" value={filters.region} onChange={set('region')} placeholder="westeurope" />
        </label>
      </Filters>
      {message && (
        <p id="message" role="status">
          {message}
        </p>
      )}
      {error && <p className="error">{error}</p>}
      {data && (
        <>
          <table id="vms">
            <thead>
              <tr>
                <th>Name</th>
                <th>Region</th>
                <th>Resource group</th>
                <th>Disks</th>
                <th>Protected by</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {data.items.map((vm) => {
                const by = protectedBy(vm);
                return (
                  <tr key={vm.id}>
                    <td data-label="Name">{vm.name}</td>
                    <td data-label="Region">{vm.region}</td>
                    <td data-label="Resource group">{vm.resourceGroup}</td>
                    <td data-label="Disks">{vm.disks.map((d) => `${d.name} (${bytes(d.sizeBytes)})`).join(', ')}</td>
                    <td data-label="Protected by">
                      {by.length ? by.join(', ') : <span className="warn">unprotected</span>}
                    </td>
                    <td>
                      <button type="button" onClick={() => void backUp(vm)}>
                        Back up now
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <Pager list={list} shown={data.items.length} total={data.total} id="vm-page-info" none="No VM matches" />
        </>
      )}
    </section>
  );
}
