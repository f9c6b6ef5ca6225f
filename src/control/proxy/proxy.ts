import { hostname } from 'node:os';
import type { Cloud } from '../../cloud/cloud.ts';
import { ChunkCodec } from '../../dataplane/chunk-codec.ts';
import type { Repository } from '../../repository/repository.ts';
import { restoreToCloud } from '../restore/restore-to-cloud.ts';
import { transferDisk } from '../transfer/transfer-disk.ts';
import { PROXY_CLAIM_WAIT_MS, PROXY_LEASE_MS, type ProxyProgress, type ProxyWork } from './protocol.ts';
import { errorMessage } from '../../util/errors.ts';

export interface ProxyOptions {
  region: string;
  /** The region this proxy actually runs in (default: the one it serves); recorded with each transfer. */
  location?: string;
  serverUrl: string;
  /** The proxy token the server handed this proxy (GOLDSNAP_PROXY_TOKEN). */
  token: string;
  repo: Repository;
  cloud: Cloud;
  /** Exit after this long without work: the proxy is removed when its region is idle. */
  idleMs: number;
  /** Jobs served at once (default 1). */
  jobs?: number;
  /** Read limit per transfer and write limit per restore, bytes per second (0: none). */
  bandwidth: number;
  log: (line: string) => void;
}

/**
 * A data proxy: serves one region's queue until it has been idle for `idleMs`. Each transfer
 * reads only what changed from the snapshot, through the chunk pipeline on all cores, into the
 * repository; progress goes to the server as heartbeats, which also keep the job's lease. If the
 * proxy dies, the lease runs out and another proxy takes the job up.
 *
 * Up to `jobs` jobs run at once (several disks of a run, in parallel where one disk alone leaves
 * the cores or the network waiting). They share the process's chunk pipeline (libuv's thread pool)
 * and repository; each has its own repository session, index snapshot and pack writer, its own
 * heartbeats and lease, and its own failure. Only one claim is outstanding at a time, and it is a
 * long poll: the server answers as soon as a job is queued, so an idle proxy sends a request per
 * PROXY_CLAIM_WAIT_MS rather than polling.
 */
export async function runProxy(opts: ProxyOptions): Promise<void> {
  const workerId = `proxy-${opts.region}-${hostname()}-${process.pid}`;
  const slots = Math.max(1, Math.floor(opts.jobs ?? 1));
  const codec = new ChunkCodec(opts.repo.key);
  const call = proxyClient(opts.serverUrl, opts.token);
  const serving = new Set<Promise<void>>();
  let idleSince = Date.now();
  opts.log(`${workerId}: serving ${opts.region}${slots > 1 ? `, up to ${slots} jobs at once` : ''}`);
  try {
    for (;;) {
      if (serving.size >= slots) {
        await Promise.race(serving);
        continue;
      }
      const idleLeft = serving.size === 0 ? opts.idleMs - (Date.now() - idleSince) : opts.idleMs;
      if (idleLeft <= 0) break;
      // Never held past the idle time, so an idle proxy still stops on time (at most one idle
      // time late when its last job ends while a claim is held).
      const waitMs = Math.max(1, Math.min(PROXY_CLAIM_WAIT_MS, idleLeft));
      const asked = Date.now();
      let work: ProxyWork | null;
      try {
        work = await call<ProxyWork | null>('POST', '/internal/proxy/claim', { region: opts.region, workerId, waitMs });
      } catch (err) {
        // A refusal (4xx: bad credential, wrong region) is final. A server away for longer than
        // the client's retries (a restart) is asked again until the idle time runs out.
        if (errorMessage(err).startsWith('server answered 4')) throw err;
        opts.log(`${workerId}: cannot claim work (${errorMessage(err)}); asking again`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      if (!work) {
        // A server that answers at once (stopping, or one without long polls) is asked again
        // after a pause, not in a tight loop.
        if (Date.now() - asked < waitMs / 2) await new Promise((resolve) => setTimeout(resolve, 250));
        continue;
      }
      const job: Promise<void> = serve(work)
        .catch((err: unknown) => opts.log(`${workerId}: job ${work.jobId}: ${errorMessage(err)}`))
        .finally(() => {
          serving.delete(job);
          if (serving.size === 0) idleSince = Date.now();
        });
      serving.add(job);
    }
    opts.log(`${workerId}: idle for ${Math.round(opts.idleMs / 1000)} s, stopping`);
  } finally {
    // A claim that failed for good (server gone) still lets the jobs under way end and report.
    await Promise.allSettled([...serving]);
  }

  async function serve(work: ProxyWork): Promise<void> {
    let progress: ProxyProgress = { doneBytes: 0, totalBytes: 0 };
    let lost = false;
    const beat = async () => {
      const ok = await call<{ ok: boolean }>('POST', `/internal/proxy/jobs/${work.jobId}/heartbeat`, {
        workerId,
        progress,
      }).catch(() => ({ ok: true }));
      if (!ok.ok) lost = true;
    };
    const timer = setInterval(() => void beat(), Math.min(1000, PROXY_LEASE_MS / 3));
    const onProgress = (p: ProxyProgress) => {
      if (lost)
        throw new Error(
          'the server called this job off: its lease ran out (another proxy has it) or its run no longer needs it',
        );
      progress = p;
    };
    try {
      const result =
        work.kind === 'transfer'
          ? await (async () => {
              opts.log(
                `${workerId}: transfer ${work.diskName} of run ${work.runId.slice(0, 8)} (${work.base ? 'changed blocks' : 'full'})`,
              );
              const started = Date.now();
              const r = await transferDisk(opts.repo, opts.cloud, codec, {
                snapshot: work.snapshot,
                base: work.base,
                parentFixedIndex: work.parentFixedIndex,
                onProgress,
                bandwidth: opts.bandwidth,
              });
              const seconds = (Date.now() - started) / 1000;
              opts.log(
                `${workerId}: transfer ${work.diskName} of run ${work.runId.slice(0, 8)} done: read ${(r.stats.readBytes / 1024 ** 2).toFixed(1)} MiB in ${seconds.toFixed(2)} s (${(r.stats.readBytes / 1024 ** 2 / Math.max(seconds, 0.001)).toFixed(1)} MiB/s), stored ${(r.stats.newStoredBytes / 1024 ** 2).toFixed(1)} MiB`,
              );
              return {
                fixedIndex: r.fixedIndex,
                stats: r.stats,
                incremental: r.incremental,
                proxyRegion: opts.location ?? opts.region,
                diskRegion: work.snapshot.region,
                ...(r.fullReadReason ? { fullReadReason: r.fullReadReason } : {}),
              };
            })()
          : await (async () => {
              opts.log(
                `${workerId}: restore ${work.restore.pointId.slice(0, 8)} as ${work.restore.name} in ${work.restore.region}`,
              );
              const entry = await opts.repo.resolveRecoveryPoint(work.restore.pointId);
              return restoreToCloud(opts.repo, opts.cloud, {
                ...work.restore,
                point: entry.point,
                pointId: entry.id,
                onProgress,
                bandwidth: opts.bandwidth,
              });
            })();
      clearInterval(timer);
      await call('POST', `/internal/proxy/jobs/${work.jobId}/complete`, { workerId, result });
    } catch (err) {
      clearInterval(timer);
      opts.log(`${workerId}: job ${work.jobId} failed: ${errorMessage(err)}`);
      await call('POST', `/internal/proxy/jobs/${work.jobId}/fail`, { workerId, error: errorMessage(err) }).catch(
        () => undefined,
      );
    }
  }
}

/** JSON over HTTP to the server's internal proxy API; retries while the server restarts. */
function proxyClient(serverUrl: string, token: string) {
  return async function call<T>(method: string, path: string, body: unknown): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fetch(new URL(path, serverUrl), {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        const text = await res.text();
        if (!res.ok) throw new Error(`server answered ${res.status} to ${path}: ${text.slice(0, 300)}`);
        return (text ? JSON.parse(text) : null) as T;
      } catch (err) {
        if (attempt >= 20 || errorMessage(err).startsWith('server answered 4')) throw err;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  };
}
