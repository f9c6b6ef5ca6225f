import { useState } from 'react';
import { call, get, type Policy, type RecoveryPointEntry, type Run, type Vm } from '../api.ts';
import { bytes, duration, percent, when } from '../format.ts';
import { usePoll } from '../hooks.ts';
import { errorMessage } from '../../../../util/errors.ts';

interface Overview {
  vms: Array<Vm & { protectedBy: string[] }>;
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

async function total(query: string): Promise<number> {
  return Number((await call<Run[]>('GET', `/api/runs?limit=1&${query}`)).headers.get('x-total-count') ?? 0);
}

async function loadOverview(): Promise<Overview> {
  const dayAgo = new Date(Date.now() - 86_400_000).toISOString();
  const weekAgo = new Date(Date.now() - 7 * 86_400_000).toISOString();
  const [vms, policies, running, week, points, metrics, dayOk, dayFailed, weekOk, weekFailed] = await Promise.all([
    get<Vm[]>('/api/vms'),
    get<Policy[]>('/api/policies'),
    get<Run[]>('/api/runs?status=running'),
    get<Run[]>(`/api/runs?status=finished&limit=1000&since=${encodeURIComponent(weekAgo)}`),
    get<RecoveryPointEntry[]>('/api/recovery-points'),
    get<string>('/metrics').catch(() => ''),
    total(`status=succeeded&since=${encodeURIComponent(dayAgo)}`),
    total(`status=failed&since=${encodeURIComponent(dayAgo)}`),
    total(`status=succeeded&since=${encodeURIComponent(weekAgo)}`),
    total(`status=failed&since=${encodeURIComponent(weekAgo)}`),
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
    vms: vms.map((vm) => ({
      ...vm,
      protectedBy: policies.filter((p) => p.enabled && selects(p, vm)).map((p) => p.name),
    })),
    running,
    rate: { day: { ok: dayOk, failed: dayFailed }, week: { ok: weekOk, failed: weekFailed } },
    perDay: [...days].map(([day, v]) => ({ day, ...v })),
    ...(repo ? { repositoryBytes: Number(repo) } : {}),
    logicalBytes: points.reduce((n, p) => n + p.point.disks.reduce((m, d) => m + d.sizeBytes, 0), 0),
  };
}

export function Dashboard() {
  const { data, error, reload } = usePoll(loadOverview, 2000);
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
  if (!data) return <p className={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;
  const unprotected = data.vms.filter((v) => !v.protectedBy.length);
  const max = Math.max(1, ...data.perDay.map((d) => Math.max(d.read, d.stored)));
  return (
    <>
      <h1>Dashboard</h1>
      {error && <p className="error">{error}</p>}
      <section className="cards">
        <div className="card" id="card-protected">
          <b>{data.vms.length - unprotected.length}</b> VMs protected<small>{unprotected.length} unprotected</small>
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
      </section>

      <section>
        <h2>Data read and stored per day</h2>
        <svg className="chart" viewBox="0 0 700 160" role="img" aria-label="Bytes read and stored per day, last 7 days">
          {data.perDay.map((d, i) => (
            <g key={d.day} transform={`translate(${i * 100 + 10},0)`}>
              <rect className="read" x="0" y={130 - (120 * d.read) / max} width="38" height={(120 * d.read) / max}>
                <title>{`${d.day}: read ${bytes(d.read)}`}</title>
              </rect>
              <rect
                className="stored"
                x="42"
                y={130 - (120 * d.stored) / max}
                width="38"
                height={(120 * d.stored) / max}
              >
                <title>{`${d.day}: stored ${bytes(d.stored)}`}</title>
              </rect>
              <text x="40" y="150" textAnchor="middle">
                {d.day.slice(5)}
              </text>
            </g>
          ))}
        </svg>
        <p className="legend">
          <span className="key read" /> read <span className="key stored" /> stored
        </p>
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

      <section>
        <h2>VMs</h2>
        {message && (
          <p id="message" role="status">
            {message}
          </p>
        )}
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
            {data.vms.map((vm) => (
              <tr key={vm.id}>
                <td data-label="Name">{vm.name}</td>
                <td data-label="Region">{vm.region}</td>
                <td data-label="Resource group">{vm.resourceGroup}</td>
                <td data-label="Disks">{vm.disks.map((d) => `${d.name} (${bytes(d.sizeBytes)})`).join(', ')}</td>
                <td data-label="Protected by">
                  {vm.protectedBy.length ? vm.protectedBy.join(', ') : <span className="warn">unprotected</span>}
                </td>
                <td>
                  <button type="button" onClick={() => void backUp(vm)}>
                    Back up now
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <p className="muted small">Updated {when(new Date().toISOString())}</p>
    </>
  );
}
