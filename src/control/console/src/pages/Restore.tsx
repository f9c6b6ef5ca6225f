import { useEffect, useState, type FormEvent } from 'react';
import { call, get, type RecoveryPointEntry, type RestoreView, type Vm } from '../api.ts';
import { bytes, when } from '../format.ts';
import { usePoll } from '../hooks.ts';
import { Filters, Pager, TimeFilter, useListQuery, usePagedList } from '../list.tsx';
import { errorMessage } from '../../../../util/errors.ts';

/** Restore wizard: point → disks → where (region, resource group, name, VM) → progress. */
export function Restore({ pointId }: { pointId?: string }) {
  const { data, error } = usePoll(async () => ({ vms: await get<Vm[]>('/api/vms?limit=1000') }), 0);
  const [point, setPoint] = useState<RecoveryPointEntry>();
  const [disks, setDisks] = useState<string[]>();
  const [job, setJob] = useState<RestoreView>();
  const [failure, setFailure] = useState<string>();
  useEffect(() => {
    if (pointId && !point)
      void get<RecoveryPointEntry[]>(`/api/recovery-points?limit=1&q=${encodeURIComponent(pointId)}`).then(
        (found) => setPoint(found.find((p) => p.id.startsWith(pointId))),
        (e: Error) => setFailure(e.message),
      );
  }, [pointId, point]);
  useEffect(() => {
    if (!job || job.state === 'done' || job.state === 'failed') return undefined;
    const timer = setInterval(
      () => void get<RestoreView>(`/api/restores/${job.id}`).then(setJob, (e: Error) => setFailure(e.message)),
      1000,
    );
    return () => clearInterval(timer);
  }, [job]);
  if (!data) return <p className={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;
  const vmName = (p: RecoveryPointEntry) =>
    data.vms.find((v) => v.id === p.vmId)?.name ??
    p.point.tags.find((t) => t.startsWith('vm:'))?.slice(3) ??
    p.vmId.split('/').pop();
  const regions = [...new Set(['westeurope', 'eastus', ...data.vms.map((v) => v.region)])].sort();
  const groups = [...new Set(data.vms.map((v) => v.resourceGroup))].sort();

  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const text = (k: string) => String(f.get(k) ?? '').trim();
    try {
      const { data: started } = await call<RestoreView>('POST', '/api/restores', {
        recoveryPointId: point!.id,
        name: text('name'),
        region: text('region'),
        ...(text('resourceGroup') ? { resourceGroup: text('resourceGroup') } : {}),
        disks,
        createVm: f.get('createVm') === 'on',
      });
      setJob(started);
      setFailure(undefined);
    } catch (err) {
      setFailure(errorMessage(err));
    }
  };

  return (
    <>
      <h1>Restore</h1>
      <ol className="steps">
        <li className={!point ? 'current' : ''}>Recovery point</li>
        <li className={point && !disks ? 'current' : ''}>Disks</li>
        <li className={disks && !job ? 'current' : ''}>Where</li>
        <li className={job ? 'current' : ''}>Progress</li>
      </ol>
      {!point && (
        <>
          <PointList vmName={vmName} onPick={setPoint} />
          <RestoreList />
        </>
      )}
      {point && !disks && (
        <form
          id="restore-disks"
          className="panel"
          onSubmit={(e) => {
            e.preventDefault();
            setDisks(new FormData(e.currentTarget).getAll('disk').map(String));
          }}
        >
          <h2>
            {vmName(point)} at {when(point.time)}: which disks?
          </h2>
          {point.point.disks.map((d) => (
            <label key={d.name}>
              <input type="checkbox" name="disk" value={d.name} defaultChecked /> {d.name} ({bytes(d.sizeBytes)})
            </label>
          ))}
          <p>
            <button type="button" onClick={() => setPoint(undefined)}>
              Back
            </button>{' '}
            <button type="submit">Next</button>
          </p>
        </form>
      )}
      {point && disks && !job && (
        <form id="restore" className="panel" onSubmit={submit}>
          <h2>Where to</h2>
          <label>
            Name of the new VM (prefix of the new disks){' '}
            <input name="name" required pattern="[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}" />
          </label>
          <label>
            Region{' '}
            <input
              name="region"
              list="regions"
              required
              defaultValue={data.vms.find((v) => v.id === point.vmId)?.region}
            />
          </label>
          <datalist id="regions">
            {regions.map((r) => (
              <option key={r} value={r} />
            ))}
          </datalist>
          <label>
            Resource group <input name="resourceGroup" list="groups" placeholder="default: <name>-restore" />
          </label>
          <datalist id="groups">
            {groups.map((g) => (
              <option key={g} value={g} />
            ))}
          </datalist>
          <label>
            <input type="checkbox" name="createVm" /> Also create a VM from the restored disks
          </label>
          {failure && (
            <p className="error" role="alert">
              {failure}
            </p>
          )}
          <p>
            <button type="button" onClick={() => setDisks(undefined)}>
              Back
            </button>{' '}
            <button type="submit">Restore</button>
          </p>
        </form>
      )}
      {job && (
        <section id="restore-result" className="panel">
          {job.state === 'done' && job.result ? (
            <>
              <h2>Restored</h2>
              <ul>
                {job.result.disks.map((d) => (
                  <li key={d.id}>
                    {d.name} ({d.region})
                  </li>
                ))}
                {job.result.vm && <li>VM {job.result.vm.name}</li>}
              </ul>
            </>
          ) : job.state === 'failed' ? (
            <p className="error">Restore failed: {job.error}</p>
          ) : (
            <p>
              Restoring{job.progress?.disk ? ` ${job.progress.disk}` : ''}…{' '}
              <progress value={job.progress?.doneBytes ?? 0} max={Math.max(1, job.progress?.totalBytes ?? 0)} />
            </p>
          )}
          {failure && <p className="error">{failure}</p>}
        </section>
      )}
    </>
  );
}

/** Recovery points to restore from: searched, filtered and paged by the server. */
function PointList({
  vmName,
  onPick,
}: {
  vmName: (p: RecoveryPointEntry) => string | undefined;
  onPick: (p: RecoveryPointEntry) => void;
}) {
  const list = useListQuery({ q: '', vm: '', since: '', until: '' }, 20);
  const { filters, set } = list;
  const { data, error } = usePagedList<RecoveryPointEntry>('/api/recovery-points', list, 5000);
  return (
    <section>
      <Filters id="point-filters">
        <label>
          Search{' '}
          <input name="q" type="search" value={filters.q} onChange={set('q')} placeholder="VM, point id or disk" />
        </label>
        <label>
          VM <input name="vm" value={filters.vm} onChange={set('vm')} placeholder="name or id" />
        </label>
        <TimeFilter label="From" name="since" value={filters.since} onChange={set('since')} />
        <TimeFilter label="Until" name="until" value={filters.until} onChange={set('until')} />
      </Filters>
      {error && <p className="error">{error}</p>}
      {data && (
        <>
          <table id="points">
            <thead>
              <tr>
                <th>VM</th>
                <th>Time</th>
                <th>Consistency</th>
                <th>Disks</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {data.items.map((p) => (
                <tr key={p.id}>
                  <td data-label="VM">{vmName(p)}</td>
                  <td data-label="Time">{when(p.time)}</td>
                  <td data-label="Consistency">{p.point.consistency ?? 'per-disk'}</td>
                  <td data-label="Disks">{p.point.disks.map((d) => `${d.name} (${bytes(d.sizeBytes)})`).join(', ')}</td>
                  <td className="actions">
                    <button type="button" onClick={() => onPick(p)}>
                      Restore
                    </button>{' '}
                    <a href={`#/files/${p.id}`}>Files</a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager
            list={list}
            shown={data.items.length}
            total={data.total}
            id="point-page-info"
            none="No recovery point matches"
          />
        </>
      )}
    </section>
  );
}

/** Restores made, newest first: searched, filtered and paged by the server. */
function RestoreList() {
  const list = useListQuery({ q: '', state: '' }, 10);
  const { filters, set } = list;
  const { data, error } = usePagedList<RestoreView & { createdAt: string; request: { name?: string } }>(
    '/api/restores',
    list,
    3000,
  );
  return (
    <section>
      <h2>Restores</h2>
      <Filters id="restore-filters">
        <label>
          Search{' '}
          <input name="q" type="search" value={filters.q} onChange={set('q')} placeholder="name, region or error" />
        </label>
        <label>
          State{' '}
          <select name="state" value={filters.state} onChange={set('state')}>
            <option value="">any</option>
            <option value="queued">queued</option>
            <option value="running">running</option>
            <option value="done">done</option>
            <option value="failed">failed</option>
          </select>
        </label>
      </Filters>
      {error && <p className="error">{error}</p>}
      {data && (
        <>
          <table id="restores">
            <thead>
              <tr>
                <th>Name</th>
                <th>State</th>
                <th>Requested</th>
                <th>Result</th>
              </tr>
            </thead>
            <tbody>
              {data.items.map((r) => (
                <tr key={r.id}>
                  <td data-label="Name">{r.request?.name ?? r.id}</td>
                  <td data-label="State" className={`step ${r.state === 'done' ? 'succeeded' : r.state}`}>
                    {r.state}
                  </td>
                  <td data-label="Requested">{when(r.createdAt)}</td>
                  <td data-label="Result">
                    {r.error ?? (r.result ? r.result.disks.map((d) => `${d.name} (${d.region})`).join(', ') : '')}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager
            list={list}
            shown={data.items.length}
            total={data.total}
            id="restore-page-info"
            none="No restore matches"
          />
        </>
      )}
    </section>
  );
}
