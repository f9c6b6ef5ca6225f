import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Backend } from '../../repository/backend/backend.ts';
import type { Queryable } from '../catalog/database.ts';
import { isProtected, type PolicyStore } from '../catalog/policies.ts';
import type { SqlRunStore } from '../catalog/run-store.ts';
import type { ProxyLauncher } from '../proxy/launcher.ts';
import type { ControlQueue } from '../jobs.ts';

export interface MetricsSources {
  db: Queryable;
  runs: SqlRunStore;
  policies: PolicyStore;
  queue: ControlQueue;
  launcher: ProxyLauncher;
  /** The repository's storage; its size is listed at most once a minute (object stores bill listings). */
  repository?: Backend;
}

/**
 * The server's Prometheus metrics. Everything is read from the catalog (and the repository) at
 * scrape time, so the figures are the same whichever server of a shared catalog is scraped, and
 * survive restarts: the `_total` counters are totals over the runs the catalog holds.
 */
export function buildMetrics(src: MetricsSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'goldsnap_' });

  new Counter({
    name: 'goldsnap_runs_total',
    help: 'Finished backup runs, by result',
    labelNames: ['result'],
    registers: [registry],
    async collect() {
      const rows = await src.db.query<{ step: string; n: number }>(
        `SELECT step, count(*)::int AS n FROM runs WHERE finished_at IS NOT NULL GROUP BY step`,
      );
      this.reset();
      for (const result of ['succeeded', 'failed'])
        this.inc({ result }, Number(rows.find((r) => r.step === result)?.n ?? 0));
    },
  });
  new Gauge({
    name: 'goldsnap_runs_running',
    help: 'Backup runs not finished yet',
    registers: [registry],
    async collect() {
      const [row] = await src.db.query<{ n: number }>('SELECT count(*)::int AS n FROM runs WHERE finished_at IS NULL');
      this.set(Number(row?.n ?? 0));
    },
  });
  const totals = async () => {
    const [row] = await src.db.query<{ seconds: number; runs: number; read: string; stored: string }>(
      `SELECT coalesce(sum(extract(epoch FROM (finished_at - coalesce((doc->>'startedAt')::timestamptz, created_at)))), 0)::float8 AS seconds,
              count(*)::int AS runs,
              coalesce(sum((SELECT sum(coalesce((d->'stats'->>'readBytes')::bigint, 0)) FROM jsonb_array_elements(doc->'disks') d)), 0)::text AS read,
              coalesce(sum((SELECT sum(coalesce((d->'stats'->>'newStoredBytes')::bigint, 0)) FROM jsonb_array_elements(doc->'disks') d)), 0)::text AS stored
       FROM runs WHERE finished_at IS NOT NULL`,
    );
    return {
      seconds: Number(row?.seconds ?? 0),
      runs: Number(row?.runs ?? 0),
      read: Number(row?.read ?? 0),
      stored: Number(row?.stored ?? 0),
    };
  };
  new Counter({
    name: 'goldsnap_run_duration_seconds_total',
    help: 'Time finished runs took, summed (divide by goldsnap_runs_total for the mean)',
    registers: [registry],
    async collect() {
      this.reset();
      this.inc((await totals()).seconds);
    },
  });
  new Counter({
    name: 'goldsnap_backup_read_bytes_total',
    help: 'Bytes read from source disks by backups',
    registers: [registry],
    async collect() {
      this.reset();
      this.inc((await totals()).read);
    },
  });
  new Counter({
    name: 'goldsnap_backup_stored_bytes_total',
    help: 'Bytes backups added to the repository (new chunks, compressed and encrypted)',
    registers: [registry],
    async collect() {
      this.reset();
      this.inc((await totals()).stored);
    },
  });
  new Gauge({
    name: 'goldsnap_proxies',
    help: 'Data proxies running now, by region',
    labelNames: ['region'],
    registers: [registry],
    collect() {
      this.reset();
      const byRegion = new Map<string, number>();
      for (const p of src.launcher.list()) byRegion.set(p.region, (byRegion.get(p.region) ?? 0) + 1);
      for (const [region, n] of byRegion) this.set({ region }, n);
    },
  });
  new Gauge({
    name: 'goldsnap_queue_jobs',
    help: 'Jobs waiting (queued) or being worked on (running), by queue',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [queue, d] of Object.entries(await src.queue.depth(''))) {
        this.set({ queue, state: 'queued' }, d.queued);
        this.set({ queue, state: 'running' }, d.running);
      }
    },
  });
  new Gauge({
    name: 'goldsnap_vms',
    help: 'VMs in the inventory, by whether an enabled policy selects them',
    labelNames: ['protected'],
    registers: [registry],
    async collect() {
      const policies = await src.policies.list();
      const vms = await src.runs.listVms();
      const covered = vms.filter((vm) => isProtected(vm, policies)).length;
      this.set({ protected: 'true' }, covered);
      this.set({ protected: 'false' }, vms.length - covered);
    },
  });
  new Gauge({
    name: 'goldsnap_recovery_points',
    help: 'Recovery points in the catalog',
    registers: [registry],
    async collect() {
      const [row] = await src.db.query<{ n: number }>('SELECT count(*)::int AS n FROM recovery_points');
      this.set(Number(row?.n ?? 0));
    },
  });
  if (src.repository) {
    const backend = src.repository;
    // Listing a large repository is slow, so its size is kept for a minute, but not across a new
    // or forgotten recovery point: the dashboard divides by it right after the first backup.
    let cached: { at: number; points: number; bytes: number } | undefined;
    new Gauge({
      name: 'goldsnap_repository_bytes',
      help: 'Bytes the repository takes in its storage (listed at most once a minute, and when recovery points come or go)',
      registers: [registry],
      async collect() {
        const [row] = await src.db.query<{ n: number }>('SELECT count(*)::int AS n FROM recovery_points');
        const points = Number(row?.n ?? 0);
        if (!cached || cached.points !== points || Date.now() - cached.at > 60_000) {
          let bytes = 0;
          for await (const o of backend.list('')) bytes += o.size;
          cached = { at: Date.now(), points, bytes };
        }
        this.set(cached.bytes);
      },
    });
  }
  return registry;
}
