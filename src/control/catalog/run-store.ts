import { EventEmitter, once } from 'node:events';
import type { CloudVm } from '../../cloud/cloud.ts';
import type { RecoveryPoint } from '../../repository/recovery-point.ts';
import type { RetentionPolicy } from '../../repository/retention.ts';
import type { RecoveryPointEntry } from '../../repository/repository.ts';
import type { Golden, RunStore, TransferOutcome } from '../orchestrator/backup-run.ts';
import { isFinished, type Run, type RunDisk } from '../orchestrator/run-model.ts';
import { type ControlQueue, type JobPayloads, transferQueue } from '../jobs.ts';
import { JobQueue } from '../queue/job-queue.ts';
import type { Database } from './database.ts';
import { NotFoundError } from './errors.ts';
import { iso, isoOrNull } from '../../util/time.ts';

/** A run as created by the scheduler: with the policy occurrence it belongs to. */
export type NewRun = Run & { scheduledFor?: string };

/** A recovery point as the catalog keeps it: the repository's entry, with its VM, run and time. */
export interface CatalogRecoveryPoint extends RecoveryPointEntry {
  vmId: string;
  runId: string;
  time: string;
}

export interface InventoryVm extends CloudVm {
  /** When the inventory last saw this VM in the cloud. */
  seenAt: string;
}

/**
 * How long a wait for a run's next step goes without looking at the catalog again: runs that
 * another server on the same catalog advances save no event here.
 */
const RUN_RECHECK_MS = 1000;

function transferKey(runId: string, diskId: string): string {
  return `transfer:${runId}:${diskId}`;
}

/** The orchestrator's catalog (RunStore) and the run, recovery point, golden and inventory queries. */
export class SqlRunStore implements RunStore {
  readonly db: Database;
  readonly queue: ControlQueue;
  /** Emits `run` with the run's id after every save of a run in this process. */
  readonly #saved = new EventEmitter();

  constructor(db: Database, queue?: ControlQueue) {
    this.db = db;
    this.queue = queue ?? new JobQueue<JobPayloads>(db);
    // One listener per waiting request (API long polls), any number of them.
    this.#saved.setMaxListeners(0);
  }

  /**
   * Creates a run; idempotent on (policyId, vmId, scheduledFor) and on id: if such a run exists
   * already, it is returned instead (compare ids to know). A VM has at most one unfinished run:
   * creating another returns that one.
   */
  async createRun(run: NewRun): Promise<Run> {
    const scheduledFor = isoOrNull(run.scheduledFor);
    const [row] = await this.db.query<{ doc: Run }>(
      `INSERT INTO runs (id, vm_id, policy_id, scheduled_for, step, doc, created_at, updated_at, finished_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8)
       ON CONFLICT DO NOTHING RETURNING doc`,
      [
        run.id,
        run.vmId,
        run.policyId ?? null,
        scheduledFor,
        run.step,
        JSON.stringify(run),
        isoOrNull(run.createdAt) ?? new Date().toISOString(),
        isFinished(run.step) ? (isoOrNull(run.finishedAt) ?? new Date().toISOString()) : null,
      ],
    );
    if (row) return row.doc;
    if (run.policyId && scheduledFor) {
      const [existing] = await this.db.query<{ doc: Run }>(
        'SELECT doc FROM runs WHERE policy_id = $1 AND vm_id = $2 AND scheduled_for = $3',
        [run.policyId, run.vmId, scheduledFor],
      );
      if (existing) return existing.doc;
    }
    return (await this.activeRunForVm(run.vmId)) ?? this.getRun(run.id);
  }

  async getRun(id: string): Promise<Run> {
    const run = await this.findRun(id);
    if (!run) throw new NotFoundError('run', id);
    return run;
  }

  /**
   * The run once its step is no longer `step` (the one it is at now, if not given; at once if it
   * has moved on already, or has ended), or as it is after `waitMs`. Saves in this process wake the
   * wait; others are seen within RUN_RECHECK_MS. Ends early, with the run as it is, when `signal`
   * aborts.
   */
  async nextStep(id: string, step: string | undefined, waitMs: number, signal?: AbortSignal): Promise<Run> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const run = await this.getRun(id);
      step ??= run.step;
      const left = deadline - Date.now();
      if (run.step !== step || isFinished(run.step) || left <= 0 || signal?.aborted) return run;
      await this.#savedOrTimeout(id, Math.min(left, RUN_RECHECK_MS), signal);
    }
  }

  async #savedOrTimeout(id: string, ms: number, signal?: AbortSignal): Promise<void> {
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), ms);
    const onSaved = (savedId: string) => {
      if (savedId === id) stop.abort();
    };
    this.#saved.on('run', onSaved);
    try {
      await once(stop.signal, 'abort', { signal });
    } catch {
      // `signal` aborted: the caller returns the run as it is.
    } finally {
      clearTimeout(timer);
      this.#saved.off('run', onSaved);
    }
  }

  async findRun(id: string): Promise<Run | undefined> {
    const [row] = await this.db.query<{ doc: Run }>('SELECT doc FROM runs WHERE id = $1', [id]);
    return row?.doc;
  }

  /** Saves the whole run document (inserting it if new). */
  async saveRun(run: Run): Promise<void> {
    const finishedAt = isFinished(run.step) ? (isoOrNull(run.finishedAt) ?? new Date().toISOString()) : null;
    await this.db.query(
      `INSERT INTO runs (id, vm_id, policy_id, scheduled_for, step, doc, created_at, updated_at, finished_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8)
       ON CONFLICT (id) DO UPDATE SET step = excluded.step, doc = excluded.doc, updated_at = now(), finished_at = excluded.finished_at`,
      [
        run.id,
        run.vmId,
        run.policyId ?? null,
        isoOrNull((run as NewRun).scheduledFor),
        run.step,
        JSON.stringify(run),
        isoOrNull(run.createdAt) ?? new Date().toISOString(),
        finishedAt,
      ],
    );
    this.#saved.emit('run', run.id);
  }

  /** Newest first. `active`: only unfinished runs (true) or only finished ones (false). */
  async listRuns(opts: { vmId?: string; policyId?: string; active?: boolean; limit?: number } = {}): Promise<Run[]> {
    const rows = await this.db.query<{ doc: Run }>(
      `SELECT doc FROM runs
       WHERE ($1::text IS NULL OR vm_id = $1) AND ($2::text IS NULL OR policy_id = $2)
         AND ($3::boolean IS NULL OR (finished_at IS NULL) = $3)
       ORDER BY created_at DESC, id DESC LIMIT $4`,
      [opts.vmId ?? null, opts.policyId ?? null, opts.active ?? null, opts.limit ?? 100],
    );
    return rows.map((r) => r.doc);
  }

  /**
   * Ids of the unfinished runs no server holds (no lease, or one that ran out), oldest first: the
   * orchestrator's safety-net poll advances them. Ids only, not the run documents.
   */
  async activeRunIdsToAdvance(): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(
      `SELECT id FROM runs WHERE finished_at IS NULL AND (owner IS NULL OR owner_until < now()) ORDER BY created_at, id`,
    );
    return rows.map((r) => r.id);
  }

  /** The unfinished run of a VM, if any (the newest, should there be several). */
  async activeRunForVm(vmId: string): Promise<Run | undefined> {
    const [row] = await this.db.query<{ doc: Run }>(
      'SELECT doc FROM runs WHERE vm_id = $1 AND finished_at IS NULL ORDER BY created_at DESC LIMIT 1',
      [vmId],
    );
    return row?.doc;
  }

  async getGolden(diskId: string): Promise<Golden | undefined> {
    const [row] = await this.db.query<GoldenRow>('SELECT * FROM golden WHERE disk_id = $1', [diskId]);
    return row && goldenFromRow(row);
  }

  async setGolden(golden: Golden): Promise<void> {
    await this.db.query(
      `INSERT INTO golden (disk_id, snapshot_id, fixed_index, recovery_point_id, updated_at) VALUES ($1, $2, $3, $4, now())
       ON CONFLICT (disk_id) DO UPDATE SET snapshot_id = excluded.snapshot_id, fixed_index = excluded.fixed_index,
         recovery_point_id = excluded.recovery_point_id, updated_at = now()`,
      [golden.diskId, golden.snapshotId, golden.fixedIndex, golden.recoveryPointId],
    );
  }

  async listGolden(): Promise<(Golden & { updatedAt: string })[]> {
    const rows = await this.db.query<GoldenRow>('SELECT * FROM golden ORDER BY disk_id');
    return rows.map((r) => ({ ...goldenFromRow(r), updatedAt: iso(r.updated_at) }));
  }

  async recordRecoveryPoint(entry: CatalogRecoveryPoint): Promise<void> {
    await this.db.query(
      `INSERT INTO recovery_points (id, vm_id, run_id, time, point) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET vm_id = excluded.vm_id, run_id = excluded.run_id, time = excluded.time, point = excluded.point`,
      [entry.id, entry.vmId, entry.runId, isoOrNull(entry.time), JSON.stringify(entry.point)],
    );
  }

  async forgetRecoveryPoint(id: string): Promise<void> {
    await this.db.query('DELETE FROM recovery_points WHERE id = $1', [id]);
  }

  /** Newest first. */
  async listRecoveryPoints(opts: { vmId?: string; limit?: number } = {}): Promise<CatalogRecoveryPoint[]> {
    const rows = await this.db.query<{
      id: string;
      vm_id: string;
      run_id: string;
      time: Date | string;
      point: RecoveryPoint;
    }>(`SELECT * FROM recovery_points WHERE ($1::text IS NULL OR vm_id = $1) ORDER BY time DESC, id LIMIT $2`, [
      opts.vmId ?? null,
      opts.limit ?? 10_000,
    ]);
    return rows.map((r) => ({ id: r.id, vmId: r.vm_id, runId: r.run_id, time: iso(r.time), point: r.point }));
  }

  /** Recovery points whose id starts with `prefix` (hex), at most `limit`: enough to tell unique from ambiguous. */
  async recoveryPointsByPrefix(prefix: string, limit = 2): Promise<CatalogRecoveryPoint[]> {
    if (!/^[0-9a-f]+$/.test(prefix)) return [];
    const rows = await this.db.query<{
      id: string;
      vm_id: string;
      run_id: string;
      time: Date | string;
      point: RecoveryPoint;
    }>(`SELECT * FROM recovery_points WHERE id LIKE $1 ORDER BY id LIMIT $2`, [`${prefix}%`, limit]);
    return rows.map((r) => ({ id: r.id, vmId: r.vm_id, runId: r.run_id, time: iso(r.time), point: r.point }));
  }

  /** Ids of runs starting with `prefix`, at most `limit`. */
  async runIdsByPrefix(prefix: string, limit = 2): Promise<string[]> {
    if (!/^[0-9a-f-]+$/.test(prefix)) return [];
    const rows = await this.db.query<{ id: string }>('SELECT id FROM runs WHERE id LIKE $1 ORDER BY id LIMIT $2', [
      `${prefix}%`,
      limit,
    ]);
    return rows.map((r) => r.id);
  }

  async getRecoveryPoint(id: string): Promise<CatalogRecoveryPoint | undefined> {
    const [r] = await this.db.query<{
      id: string;
      vm_id: string;
      run_id: string;
      time: Date | string;
      point: RecoveryPoint;
    }>('SELECT * FROM recovery_points WHERE id = $1', [id]);
    return r && { id: r.id, vmId: r.vm_id, runId: r.run_id, time: iso(r.time), point: r.point };
  }

  /**
   * Takes (or renews) the lease on a run for `owner`: false when another owner holds it and its
   * lease has not run out. Only the holder advances the run.
   */
  async leaseRun(runId: string, owner: string, leaseMs: number): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE runs SET owner = $2, owner_until = now() + $3::float8 * interval '1 millisecond'
       WHERE id = $1 AND (owner IS NULL OR owner = $2 OR owner_until < now()) RETURNING id`,
      [runId, owner, leaseMs],
    );
    return rows.length > 0;
  }

  async releaseRun(runId: string, owner: string): Promise<void> {
    await this.db.query('UPDATE runs SET owner = NULL, owner_until = NULL WHERE id = $1 AND owner = $2', [
      runId,
      owner,
    ]);
  }

  /** What became of the transfer job of one disk of a run, if it was queued. */
  async transferOutcome(runId: string, diskId: string): Promise<TransferOutcome | undefined> {
    const [row] = await this.db.query<{
      state: TransferOutcome['state'];
      result: unknown;
      progress: unknown;
      last_error: string | null;
    }>('SELECT state, result, progress, last_error FROM jobs WHERE dedupe_key = $1', [transferKey(runId, diskId)]);
    return (
      row && {
        state: row.state,
        result: row.result ?? undefined,
        progress: row.progress ?? undefined,
        ...(row.last_error ? { error: row.last_error } : {}),
      }
    );
  }

  /** Queues the transfer of one disk on `transfer:<region>`; enqueueing it again is a no-op. */
  async enqueueTransfer(runId: string, disk: RunDisk): Promise<void> {
    await this.queue.enqueue({
      queue: transferQueue(disk.region),
      kind: 'transfer',
      payload: { runId, diskId: disk.diskId },
      dedupeKey: transferKey(runId, disk.diskId),
    });
  }

  /** A run's jobs (its transfers), oldest first. */
  async jobsOfRun(runId: string) {
    return this.queue.listByPayload('runId', runId);
  }

  /**
   * Deletes jobs finished before `olderThan`, except those of runs still unfinished (their
   * transfer step reads them). Freeing old dedupe keys is safe: a policy occurrence fires once by
   * schedule_fires, and transfers are only queued for unfinished runs.
   */
  async purgeJobs(olderThan: Date): Promise<number> {
    const rows = await this.db.query(
      `DELETE FROM jobs j WHERE state IN ('done', 'failed') AND updated_at < $1
         AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = j.payload->>'runId' AND r.finished_at IS NULL)
       RETURNING id`,
      [olderThan.toISOString()],
    );
    return rows.length;
  }

  async retentionOf(run: Run): Promise<{ policy: RetentionPolicy; timeZone: string } | undefined> {
    if (!run.policyId) return undefined;
    const [row] = await this.db.query<{ retention: RetentionPolicy; time_zone: string }>(
      'SELECT retention, time_zone FROM policies WHERE id = $1',
      [run.policyId],
    );
    return row && { policy: row.retention, timeZone: row.time_zone };
  }

  /** Refreshes the inventory cache with VMs just listed from the cloud (one statement, whatever their number). */
  async upsertVms(vms: CloudVm[], seenAt: Date = new Date()): Promise<void> {
    if (!vms.length) return;
    // One row per id (the statement may not touch a row twice).
    const rows = [...new Map(vms.map((vm) => [vm.id, vm])).values()].map((vm) => ({
      id: vm.id,
      name: vm.name,
      region: vm.region,
      resource_group: vm.resourceGroup,
      tags: vm.tags ?? {},
      disks: vm.disks ?? [],
    }));
    await this.db.query(
      `INSERT INTO vms (id, name, region, resource_group, tags, disks, seen_at)
       SELECT id, name, region, resource_group, tags, disks, $2::timestamptz
       FROM jsonb_to_recordset($1::jsonb) AS v(id text, name text, region text, resource_group text, tags jsonb, disks jsonb)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, region = excluded.region, resource_group = excluded.resource_group,
         tags = excluded.tags, disks = excluded.disks, seen_at = excluded.seen_at`,
      [JSON.stringify(rows), seenAt.toISOString()],
    );
  }

  /** Drops VMs the inventory has not seen since `before` (deleted from the cloud). Returns how many. */
  async forgetVmsNotSeenSince(before: Date): Promise<number> {
    return (await this.db.query('DELETE FROM vms WHERE seen_at < $1 RETURNING id', [before.toISOString()])).length;
  }

  async listVms(): Promise<InventoryVm[]> {
    const rows = await this.db.query<VmRow>('SELECT * FROM vms ORDER BY name, id');
    return rows.map(vmFromRow);
  }

  async getVm(id: string): Promise<InventoryVm | undefined> {
    const [row] = await this.db.query<VmRow>('SELECT * FROM vms WHERE id = $1', [id]);
    return row && vmFromRow(row);
  }
}

interface GoldenRow {
  disk_id: string;
  snapshot_id: string;
  fixed_index: string;
  recovery_point_id: string;
  updated_at: Date | string;
}

function goldenFromRow(r: GoldenRow): Golden {
  return {
    diskId: r.disk_id,
    snapshotId: r.snapshot_id,
    fixedIndex: r.fixed_index,
    recoveryPointId: r.recovery_point_id,
  };
}

interface VmRow {
  id: string;
  name: string;
  region: string;
  resource_group: string;
  tags: Record<string, string>;
  disks: CloudVm['disks'];
  seen_at: Date | string;
}

function vmFromRow(r: VmRow): InventoryVm {
  return {
    id: r.id,
    name: r.name,
    region: r.region,
    resourceGroup: r.resource_group,
    tags: r.tags,
    disks: r.disks,
    seenAt: iso(r.seen_at),
  };
}
