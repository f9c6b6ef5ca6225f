/**
 * `npm run bench:control-plane`: the control plane at scale. VMs with small disks across regions
 * in the emulator, one policy selecting them all, a `goldsnap server` process on a PostgreSQL
 * catalog of its own (created and dropped here). The policy's cron occurrence fires it; measured
 * while its runs go: time from the scheduled instant to the last run committed, the control plane's
 * time per run on top of the transfers, catalog size, server CPU, and API latency of GET /api/runs
 * and /api/vms polled meanwhile. Writes .bench/control-plane.json; `npm run bench` runs it too.
 *
 * Knobs (environment): CP_VMS (1000), CP_DISKS per VM (3), CP_REGIONS (5), CP_DISK_KIB (256),
 * CP_PROXY_IDLE seconds (30), CP_PROXY_JOBS (the server's --proxy-jobs; default the server's), DATABASE_URL of a server to create the database on
 * (postgres://postgres@127.0.0.1:5432/test), CP_SERVER_MAIN: another `src/cli/main.ts` to run as
 * the server (an older Goldsnap unpacked under this folder, to compare with; without the jobs'
 * claimed_at column its transfer floor is unknown).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { startEmulator } from '../src/emulator/emulator.ts';

const root = resolve(import.meta.dirname, '..');
const log = (line: string) => process.stderr.write(`bench control-plane: ${line}\n`);
const REGIONS = ['westeurope', 'eastus', 'northeurope', 'westus2', 'southeastasia', 'japaneast', 'brazilsouth'];

export interface ControlPlaneOptions {
  vms: number;
  disksPerVm: number;
  regions: number;
  diskKiB: number;
  proxyIdleSeconds: number;
  /** The server's --proxy-jobs (absent: its default). */
  proxyJobs?: number;
  databaseUrl: string;
  /** The server's CLI entry point (default this tree's src/cli/main.ts). */
  serverMain?: string;
}

export interface ControlPlaneResult {
  vms: number;
  disks: number;
  regions: number;
  diskKiB: number;
  runsSucceeded: number;
  runsFailed: number;
  /** The policy's scheduled instant → the scheduler's fire (its tick interval is 1 s here). */
  fireLagSeconds: number;
  /** The scheduled instant → the last run succeeded (committed, promoted, retention applied). */
  scheduleToAllCommittedSeconds: number;
  /** Busiest region's proxy time: union of its transfer jobs' [claimed, done] intervals. */
  transferFloorSeconds: number;
  /** (schedule → all committed) − transfer floor: what the control plane added to the whole. */
  controlPlaneAddedSeconds: number;
  /**
   * Per run: the scheduled instant → its end, less its transfers and the time its region's proxy
   * was busy with others before it got to this run's (NaN without the jobs' claimed_at).
   */
  perRunOverheadSeconds: { mean: number; p50: number; p95: number; max: number };
  /** Per run: the scheduled instant → its first transfer queued (fire, run creation, snapshots, a turn to run). */
  perRunBeforeTransfersSeconds: { p50: number; p95: number };
  /** Per run: its transfers queued while their region had no proxy at work (proxy start, claim latency). */
  perRunQueuedProxyIdleSeconds: { p50: number; p95: number };
  /** Per run: last transfer done → run succeeded (commit, promote, retention). */
  perRunCommitTailSeconds: { p50: number; p95: number };
  catalogBytes: number;
  serverCpuSeconds: number;
  serverCpuMsPerRun: number;
  api: Record<string, { count: number; p50Ms: number; p95Ms: number; p99Ms: number }>;
  loadAverage: number[];
}

export function optionsFromEnv(env = process.env): ControlPlaneOptions {
  const n = (name: string, def: number) => {
    const v = Number(env[name] ?? def);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a whole number ≥ 1`);
    return v;
  };
  return {
    vms: n('CP_VMS', 1000),
    disksPerVm: n('CP_DISKS', 3),
    regions: Math.min(REGIONS.length, n('CP_REGIONS', 5)),
    diskKiB: n('CP_DISK_KIB', 256),
    proxyIdleSeconds: n('CP_PROXY_IDLE', 30),
    ...(env.CP_PROXY_JOBS ? { proxyJobs: n('CP_PROXY_JOBS', 1) } : {}),
    databaseUrl: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    ...(env.CP_SERVER_MAIN ? { serverMain: resolve(env.CP_SERVER_MAIN) } : {}),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

type Interval = [number, number];

/** Sorted, merged intervals. */
function union(list: Interval[]): Interval[] {
  const sorted = list.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  const out: Interval[] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

const length = (list: Interval[]) => list.reduce((n, [a, b]) => n + (b - a), 0);

/** Parts of `a` (merged) that lie within `b` (merged). */
function intersect(a: Interval[], b: Interval[]): Interval[] {
  const out: Interval[] = [];
  let j = 0;
  for (const [s, e] of a) {
    while (j < b.length && b[j]![1] <= s) j++;
    for (let k = j; k < b.length && b[k]![0] < e; k++) {
      const lo = Math.max(s, b[k]![0]);
      const hi = Math.min(e, b[k]![1]);
      if (hi > lo) out.push([lo, hi]);
    }
  }
  return out;
}

/** utime + stime of a process, in seconds (Linux /proc). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export async function benchControlPlane(opts: ControlPlaneOptions = optionsFromEnv()): Promise<ControlPlaneResult> {
  const dir = await mkdtemp(join(tmpdir(), 'goldsnap-cp-bench-'));
  const dbName = `goldsnap_cpbench_${randomBytes(4).toString('hex')}`;
  const dbUrl = new URL(opts.databaseUrl);
  dbUrl.pathname = `/${dbName}`;
  const admin = new pg.Client({ connectionString: opts.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const emulator = await startEmulator({ dataDir: join(dir, 'emulator'), port: 0 });
  let server: ReturnType<typeof spawn> | undefined;
  const catalog = new pg.Client({ connectionString: dbUrl.toString() });
  try {
    const t0 = Date.now();
    const regions = REGIONS.slice(0, opts.regions);
    for (let i = 0; i < opts.vms; i++) {
      const name = `cp-${String(i).padStart(4, '0')}`;
      await emulator.control.createVm({
        name,
        resourceGroup: `rg-cp-${i % opts.regions}`,
        region: regions[i % opts.regions]!,
        disks: Array.from({ length: opts.disksPerVm }, (_, d) => ({
          name: `${name}-${d === 0 ? 'os' : `data${d}`}`,
          sizeBytes: opts.diskKiB * 1024,
          role: d === 0 ? ('os' as const) : ('data' as const),
          fill: 'os-like' as const,
        })),
      });
      if ((i + 1) % 200 === 0) log(`${i + 1} VMs created`);
    }
    log(
      `${opts.vms} VMs × ${opts.disksPerVm} disks of ${opts.diskKiB} KiB in ${regions.length} regions: ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    );

    // The server, as deployed: its own process, PostgreSQL catalog, the emulator apart.
    const serverLog: string[] = [];
    server = spawn(
      process.execPath,
      [
        '--disable-warning=ExperimentalWarning',
        opts.serverMain ?? join(root, 'src/cli/main.ts'),
        'server',
        '--data',
        join(dir, 'server'),
        '--port',
        '0',
        '--proxy-idle',
        String(opts.proxyIdleSeconds),
        '--scheduler-interval',
        '1000',
        ...(opts.proxyJobs ? ['--proxy-jobs', String(opts.proxyJobs)] : []),
      ],
      {
        env: {
          ...process.env,
          DATABASE_URL: dbUrl.toString(),
          GOLDSNAP_EMULATOR: emulator.connectionFile,
          GOLDSNAP_REPOSITORY: join(dir, 'repository'),
          GOLDSNAP_PASSWORD: 'control plane bench',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const onData = (d: Buffer) => {
      serverLog.push(d.toString());
      if (serverLog.length > 2000) serverLog.splice(0, 1000);
    };
    server.stdout!.on('data', onData);
    server.stderr!.on('data', onData);
    let url = '';
    while (!url) {
      if (server.exitCode !== null) throw new Error(`the server exited:\n${serverLog.join('').slice(-3000)}`);
      url = /listening on (http:[^\s"]+)/.exec(serverLog.join(''))?.[1] ?? '';
      await sleep(100);
    }
    const token = readFileSync(join(dir, 'server', 'admin-token'), 'utf8').trim();
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(new URL(path, url), {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
      return text ? JSON.parse(text) : undefined;
    };
    await catalog.connect();

    // One occurrence at the start of a minute at least 5 s away (UTC), so the scheduler fires it.
    const at = new Date(Math.ceil((Date.now() + 5000) / 60_000) * 60_000);
    const policy = await api('POST', '/api/policies', {
      name: 'control-plane-bench',
      cron: `${at.getUTCMinutes()} ${at.getUTCHours()} * * *`,
      timeZone: 'UTC',
      selection: { resourceGroups: regions.map((_, i) => `rg-cp-${i}`) },
      retention: { last: 3 },
    });
    log(`policy fires at ${at.toISOString()} (in ${Math.round((at.getTime() - Date.now()) / 1000)} s)`);
    while (Date.now() < at.getTime()) await sleep(200);

    // Measured from here: the server's CPU, and the API as a console would poll it.
    const cpu0 = cpuSeconds(server.pid!);
    const latencies: Record<string, number[]> = { 'GET /api/runs': [], 'GET /api/vms': [] };
    let polling = true;
    const poller = (async () => {
      while (polling) {
        for (const [label, path] of [
          ['GET /api/runs', '/api/runs'],
          ['GET /api/vms', '/api/vms'],
        ] as const) {
          const t = performance.now();
          await api('GET', path);
          latencies[label]!.push(performance.now() - t);
        }
        await sleep(250);
      }
    })();

    let finished = 0;
    let lastLog = 0;
    for (;;) {
      const [row] = (
        await catalog.query<{ total: number; finished: number }>(
          'SELECT count(*)::int AS total, count(finished_at)::int AS finished FROM runs',
        )
      ).rows;
      finished = row!.finished;
      if (row!.total >= opts.vms && finished >= row!.total) break;
      if (Date.now() - lastLog > 15_000) {
        lastLog = Date.now();
        log(`${row!.total} runs, ${finished} finished, load ${loadavg()[0]!.toFixed(2)}`);
      }
      if (server.exitCode !== null) throw new Error(`the server exited:\n${serverLog.join('').slice(-3000)}`);
      await sleep(500);
    }
    polling = false;
    await poller;
    const serverCpu = cpuSeconds(server.pid!) - cpu0;
    const loadAverage = loadavg();

    // The timeline, from the catalog.
    const [fire] = (
      await catalog.query<{ scheduled_for: Date; fired_at: Date }>(
        'SELECT scheduled_for, fired_at FROM schedule_fires WHERE policy_id = $1',
        [policy.id],
      )
    ).rows;
    const scheduled = fire!.scheduled_for.getTime();
    const runs = (
      await catalog.query<{
        id: string;
        step: string;
        doc: { createdAt: string; finishedAt?: string; error?: string };
      }>('SELECT id, step, doc FROM runs')
    ).rows;
    const [claimedAt] = (
      await catalog.query(
        `SELECT 1 FROM information_schema.columns WHERE table_name = 'jobs' AND column_name = 'claimed_at'`,
      )
    ).rows;
    const jobs = (
      await catalog.query<{
        queue: string;
        run_id: string;
        created_at: Date;
        claimed_at: Date | null;
        updated_at: Date;
        state: string;
      }>(
        `SELECT queue, payload->>'runId' AS run_id, created_at, ${claimedAt ? 'claimed_at' : 'NULL::timestamptz AS claimed_at'}, updated_at, state FROM jobs WHERE kind = 'transfer'`,
      )
    ).rows;
    const failed = runs.filter((r) => r.step !== 'succeeded');
    if (failed.length) log(`${failed.length} runs did not succeed, e.g. ${failed[0]!.doc.error}`);

    // Each region's proxy time: the union of its transfers' [claimed, done] intervals.
    const busy = new Map<string, Interval[]>();
    for (const j of jobs) {
      if (!j.claimed_at) continue;
      const list = busy.get(j.queue) ?? [];
      list.push([j.claimed_at.getTime(), j.updated_at.getTime()]);
      busy.set(j.queue, list);
    }
    for (const [q, list] of busy) busy.set(q, union(list));
    const floor = claimedAt ? Math.max(0, ...[...busy.values()].map(length)) : Number.NaN;
    const end = Math.max(...runs.map((r) => Date.parse(r.doc.finishedAt ?? r.doc.createdAt)));

    // Per run: from the scheduled instant to its end, less the time its transfers ran and the time
    // before they were claimed during which its region's proxy was busy with other transfers: the
    // run could not have ended sooner on that data path. What is left is the control plane's: time
    // its region's proxy sat idle before it got to the run (fire, run creation, snapshots, proxy
    // start, claim latency) and taking in results, commit, promote, retention after.
    const jobsOfRun = new Map<string, typeof jobs>();
    for (const j of jobs) jobsOfRun.set(j.run_id, [...(jobsOfRun.get(j.run_id) ?? []), j]);
    const overheads: number[] = [];
    const tails: number[] = [];
    const heads: number[] = [];
    const idleWaits: number[] = [];
    for (const r of runs) {
      if (!r.doc.finishedAt || !claimedAt) continue;
      const own = jobsOfRun.get(r.id) ?? [];
      const running = union(
        own.filter((j) => j.claimed_at).map((j) => [j.claimed_at!.getTime(), j.updated_at.getTime()]),
      );
      const waiting = union(
        own.map((j) => [j.created_at.getTime(), (j.claimed_at ?? j.updated_at).getTime()] as Interval),
      );
      const lastClaim = Math.max(scheduled, ...own.map((j) => (j.claimed_at ?? j.updated_at).getTime()));
      const regionBusy = busy.get(own[0]?.queue ?? '') ?? [];
      const waitingOnBusyProxy = intersect([[scheduled, lastClaim]], regionBusy);
      if (own.length) {
        heads.push((Math.min(...own.map((j) => j.created_at.getTime())) - scheduled) / 1000);
        idleWaits.push(
          (length(waiting) - length(intersect(waiting, union([...(busy.get(own[0]!.queue) ?? []), ...running])))) /
            1000,
        );
      }
      const dataPath = length(union([...running, ...waitingOnBusyProxy]));
      overheads.push((Date.parse(r.doc.finishedAt) - scheduled - dataPath) / 1000);
      const lastDone = Math.max(...own.map((j) => j.updated_at.getTime()));
      if (own.length) tails.push((Date.parse(r.doc.finishedAt) - lastDone) / 1000);
    }
    for (const list of [overheads, tails, heads, idleWaits]) list.sort((a, b) => a - b);
    const [size] = (await catalog.query<{ n: string }>('SELECT pg_database_size(current_database())::text AS n')).rows;

    const api95 = Object.fromEntries(
      Object.entries(latencies).map(([k, v]) => {
        const s = [...v].sort((a, b) => a - b);
        return [k, { count: s.length, p50Ms: quantile(s, 0.5), p95Ms: quantile(s, 0.95), p99Ms: quantile(s, 0.99) }];
      }),
    );
    const total = (end - scheduled) / 1000;
    return {
      vms: opts.vms,
      disks: opts.vms * opts.disksPerVm,
      regions: opts.regions,
      diskKiB: opts.diskKiB,
      runsSucceeded: runs.length - failed.length,
      runsFailed: failed.length,
      fireLagSeconds: (fire!.fired_at.getTime() - scheduled) / 1000,
      scheduleToAllCommittedSeconds: total,
      transferFloorSeconds: floor / 1000,
      controlPlaneAddedSeconds: total - floor / 1000,
      perRunOverheadSeconds: {
        mean: overheads.length ? overheads.reduce((a, b) => a + b, 0) / overheads.length : Number.NaN,
        p50: quantile(overheads, 0.5),
        p95: quantile(overheads, 0.95),
        max: overheads[overheads.length - 1] ?? Number.NaN,
      },
      perRunBeforeTransfersSeconds: { p50: quantile(heads, 0.5), p95: quantile(heads, 0.95) },
      perRunQueuedProxyIdleSeconds: { p50: quantile(idleWaits, 0.5), p95: quantile(idleWaits, 0.95) },
      perRunCommitTailSeconds: { p50: quantile(tails, 0.5), p95: quantile(tails, 0.95) },
      catalogBytes: Number(size!.n),
      serverCpuSeconds: serverCpu,
      serverCpuMsPerRun: (serverCpu * 1000) / Math.max(1, runs.length),
      api: api95,
      loadAverage,
    };
  } finally {
    await catalog.end().catch(() => {});
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    await emulator.close();
    const drop = new pg.Client({ connectionString: opts.databaseUrl });
    await drop.connect();
    await drop.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await drop.end();
    await rm(dir, { recursive: true, force: true });
  }
}

export function printControlPlane(r: ControlPlaneResult): void {
  const s = (n: number) => `${n.toFixed(2)} s`;
  const rows: Array<[string, string]> = [
    ['size', `${r.vms} VMs, ${r.disks} disks of ${r.diskKiB} KiB, ${r.regions} regions, one policy`],
    ['runs', `${r.runsSucceeded} succeeded, ${r.runsFailed} failed`],
    ['scheduled → fired', s(r.fireLagSeconds)],
    ['scheduled → all committed', s(r.scheduleToAllCommittedSeconds)],
    ['transfer floor (busiest region)', s(r.transferFloorSeconds)],
    ['control plane added (whole)', s(r.controlPlaneAddedSeconds)],
    [
      'control plane per run',
      `mean ${s(r.perRunOverheadSeconds.mean)}, p50 ${s(r.perRunOverheadSeconds.p50)}, p95 ${s(r.perRunOverheadSeconds.p95)}, max ${s(r.perRunOverheadSeconds.max)}`,
    ],
    [
      '  of which: before transfers',
      `p50 ${s(r.perRunBeforeTransfersSeconds.p50)}, p95 ${s(r.perRunBeforeTransfersSeconds.p95)}`,
    ],
    [
      '  queued, proxy idle',
      `p50 ${s(r.perRunQueuedProxyIdleSeconds.p50)}, p95 ${s(r.perRunQueuedProxyIdleSeconds.p95)}`,
    ],
    ['  last transfer → committed', `p50 ${s(r.perRunCommitTailSeconds.p50)}, p95 ${s(r.perRunCommitTailSeconds.p95)}`],
    ['catalog size', `${(r.catalogBytes / 1024 ** 2).toFixed(1)} MiB`],
    ['server CPU', `${r.serverCpuSeconds.toFixed(1)} s (${r.serverCpuMsPerRun.toFixed(1)} ms per run)`],
    ...Object.entries(r.api).map(
      ([k, v]) =>
        [
          `${k} (n=${v.count})`,
          `p50 ${v.p50Ms.toFixed(0)} ms, p95 ${v.p95Ms.toFixed(0)} ms, p99 ${v.p99Ms.toFixed(0)} ms`,
        ] as [string, string],
    ),
    ['load average', r.loadAverage.map((n) => n.toFixed(2)).join(' ')],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
}

if (import.meta.main) {
  const result = await benchControlPlane();
  printControlPlane(result);
  mkdirSync(join(root, '.bench'), { recursive: true });
  writeFileSync(join(root, '.bench', 'control-plane.json'), `${JSON.stringify(result, null, 2)}\n`);
}
