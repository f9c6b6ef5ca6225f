import { hostname } from 'node:os';
import { GOLDSNAP_TAGS, type Cloud, type CloudSnapshot } from '../../cloud/cloud.ts';
import type { RecoveryPoint } from '../../repository/recovery-point.ts';
import type { Repository } from '../../repository/repository.ts';
import { applyRetention, type RetentionPolicy } from '../../repository/retention.ts';
import type { ProxyProgress, TransferJobResult } from '../proxy/protocol.ts';
import { recordTransferRegion } from './cross-region.ts';
import { withSnapshotLimitWait } from './snapshot-limit-wait.ts';
import type { Run, RunDisk, RunStep } from './run-model.ts';
import { deleteOwnVmPoints, takeVmPoint } from './vm-point.ts';
import { errorMessage } from '../../util/errors.ts';

/** The golden snapshot of a disk: the base of its next incremental. */
export interface Golden {
  diskId: string;
  snapshotId: string;
  fixedIndex: string;
  recoveryPointId: string;
}

/** What the orchestrator needs from the catalog; implemented on PostgreSQL. */
export interface RunStore {
  getRun(id: string): Promise<Run>;
  saveRun(run: Run): Promise<void>;
  getGolden(diskId: string): Promise<Golden | undefined>;
  setGolden(golden: Golden): Promise<void>;
  /** Catalog row for a committed recovery point (the repository holds the point itself). */
  recordRecoveryPoint(entry: {
    id: string;
    vmId: string;
    runId: string;
    time: string;
    point: RecoveryPoint;
  }): Promise<void>;
  forgetRecoveryPoint(id: string): Promise<void>;
  /** The catalog's recovery points (of one VM), newest first. */
  listRecoveryPoints(opts: { vmId?: string; limit?: number }): Promise<Array<{ id: string; point: RecoveryPoint }>>;
  /** Queues the transfer of one disk on its region's queue (once per run and disk). */
  enqueueTransfer(runId: string, disk: RunDisk): Promise<void>;
  /** What became of that transfer: its job's state, the proxy's result or progress, its error. */
  transferOutcome(runId: string, diskId: string): Promise<TransferOutcome | undefined>;
  retentionOf(run: Run): Promise<{ policy: RetentionPolicy; timeZone: string } | undefined>;
}

export interface TransferOutcome {
  state: 'queued' | 'running' | 'done' | 'failed';
  result?: unknown;
  progress?: unknown;
  error?: string;
}

export interface RunContext {
  store: RunStore;
  cloud: Cloud;
  repo: Repository;
  log: (line: string) => void;
}

/** Tags on every snapshot a run makes, so its own snapshots can be found even if the run died. */
export function runSnapshotTags(run: Run, disk: RunDisk): Record<string, string> {
  return { ...GOLDSNAP_TAGS, goldsnapRun: run.id, goldsnapDisk: disk.diskId, goldsnapVm: run.vmId };
}

/** The source name under which a VM's recovery points are kept; retention groups by it. */
export function vmSource(vmId: string): string {
  return `vm:${vmId}`;
}

/** Tags a recovery point with the policy that made it; retention works per policy. */
export function policyTag(policyId: string): string {
  return `policy:${policyId}`;
}

export class RunFailure extends Error {}

/**
 * Advances a run by one step and saves it. Returns what the caller should do next: `again`
 * (call again now), `wait` (transfers are still running: call again a little later) or `done`.
 */
export async function advanceRun(ctx: RunContext, runId: string): Promise<'again' | 'wait' | 'done'> {
  const run = await ctx.store.getRun(runId);
  const next = async (step: RunStep, changes: Partial<Run> = {}) => {
    Object.assign(run, changes, { step });
    if (step === 'succeeded' || step === 'failed') run.finishedAt = new Date().toISOString();
    await ctx.store.saveRun(run);
    ctx.log(`run ${run.id.slice(0, 8)} (${run.vmName}): ${step}${changes.error ? `: ${changes.error}` : ''}`);
    return step === 'succeeded' || step === 'failed' ? ('done' as const) : ('again' as const);
  };
  try {
    switch (run.step) {
      case 'snapshot':
        return await snapshotStep(ctx, run, next);
      case 'transfer':
        return await transferStep(ctx, run, next);
      case 'commit':
        return await commitStep(ctx, run, next);
      case 'promote':
        return await promoteStep(ctx, run, next);
      case 'retention':
        return await retentionStep(ctx, run, next);
      case 'cleanup':
        return await cleanupStep(ctx, run, next);
      case 'succeeded':
      case 'failed':
        return 'done';
    }
  } catch (err) {
    // Before commit, a failure abandons the run (its snapshots are deleted, the golden ones kept).
    // From commit on, the recovery point may exist: the step is retried instead.
    if (run.step === 'snapshot' || run.step === 'transfer' || err instanceof RunFailure) {
      return next('cleanup', { error: errorMessage(err) });
    }
    throw err;
  }
}

type Next = (step: RunStep, changes?: Partial<Run>) => Promise<'again' | 'done'>;

async function snapshotStep(ctx: RunContext, run: Run, next: Next) {
  run.startedAt ??= new Date().toISOString();
  // One instant of the whole VM where the cloud and the VM allow (a restore point), else per disk.
  if (!run.consistency) {
    run.consistency = await takeVmPoint(ctx, run);
    await ctx.store.saveRun(run);
  }
  // Per disk: all disks are snapshotted before any is read, a few seconds apart at best.
  for (const disk of run.disks) {
    if (disk.snapshotId) continue;
    const golden = await ctx.store.getGolden(disk.diskId);
    const snapshot = await withSnapshotLimitWait(
      run,
      disk,
      () => ctx.store.saveRun(run),
      () =>
        ctx.cloud.createSnapshot({
          disk: {
            id: disk.diskId,
            name: disk.diskName,
            region: disk.region,
            sizeBytes: disk.sizeBytes,
            role: disk.role,
            lun: disk.lun,
          },
          name: `goldsnap-${run.id.slice(0, 8)}-${disk.diskName}`.slice(0, 80),
          tags: runSnapshotTags(run, disk),
        }),
    );
    Object.assign(disk, {
      snapshotId: snapshot.id,
      baseSnapshotId: golden?.snapshotId,
      parentFixedIndex: golden?.fixedIndex,
      bytesTotal: snapshot.sizeBytes,
    });
    await ctx.store.saveRun(run);
  }
  // Every snapshot must be readable before any is read (an incremental snapshot's background
  // copy can take a while): created all at once above, so they are one moment of the VM.
  for (const disk of run.disks) await ctx.cloud.waitForSnapshot(disk.snapshotId!);
  return next('transfer');
}

/**
 * Queues each disk's transfer and takes in what the data proxies reported on its job: progress,
 * the result, or the failure. Only the run's owner writes the run; proxies write their jobs.
 */
async function transferStep(ctx: RunContext, run: Run, next: Next) {
  let changed = false;
  for (const disk of run.disks) {
    if (disk.transferred || disk.error) continue;
    const outcome = await ctx.store.transferOutcome(run.id, disk.diskId);
    if (!outcome) {
      // Queued only once the run is saved in this step, so a proxy never finds a job of a run
      // that is not yet transferring. Queueing again is a no-op (one job per run and disk).
      await ctx.store.enqueueTransfer(run.id, disk);
      continue;
    }
    if (outcome.state === 'done') {
      const result = outcome.result as Partial<TransferJobResult> | undefined;
      if (result?.fixedIndex && result.stats) {
        Object.assign(disk, {
          fixedIndex: result.fixedIndex,
          stats: result.stats,
          incremental: Boolean(result.incremental),
          transferred: true,
          bytesDone: disk.bytesTotal,
        });
        recordTransferRegion(run, disk, result);
        if (result.fullReadReason) {
          disk.fullReadReason = result.fullReadReason;
          (run.warnings ??= []).push(`disk ${disk.diskName} was read in full: ${result.fullReadReason}`);
          ctx.log(
            `run ${run.id.slice(0, 8)} (${run.vmName}): warning: disk ${disk.diskName} was read in full: ${result.fullReadReason}`,
          );
        }
      } else {
        disk.error = 'the transfer ended without a result';
      }
      changed = true;
    } else if (outcome.state === 'failed') {
      disk.error = outcome.error ?? 'the data proxy stopped answering';
      changed = true;
    } else if (outcome.progress) {
      const p = outcome.progress as ProxyProgress;
      if (p.doneBytes !== disk.bytesDone || p.totalBytes !== disk.bytesTotal) {
        Object.assign(disk, { bytesDone: p.doneBytes, bytesTotal: p.totalBytes });
        changed = true;
      }
    }
  }
  const failed = run.disks.find((d) => d.error);
  if (failed) throw new RunFailure(`transfer of disk ${failed.diskName} failed: ${failed.error}`);
  if (run.disks.every((d) => d.transferred)) return next('commit');
  if (changed) await ctx.store.saveRun(run);
  return 'wait' as const;
}

async function commitStep(ctx: RunContext, run: Run, next: Next) {
  if (run.recoveryPointId) return next('promote');
  const source = vmSource(run.vmId);
  // A commit interrupted after the repository write but before the catalog write left a recovery
  // point tagged with this run: adopt it rather than commit a second one. Only a resumed commit
  // pays for reading the repository's points to find it.
  let existing;
  if (run.commitStarted) {
    const points = await ctx.repo.listRecoveryPoints((id, err) =>
      ctx.log(`recovery point ${id.slice(0, 12)} is unreadable (${err.message}): run goldsnap repo check`),
    );
    existing = points.find((e) => e.point.tags.includes(`run:${run.id}`));
  } else {
    run.commitStarted = true;
    await ctx.store.saveRun(run);
  }
  let id = existing?.id;
  let point = existing?.point;
  if (!id || !point) {
    point = {
      version: 1,
      time: run.startedAt ?? new Date().toISOString(),
      source,
      hostname: hostname(),
      consistency: run.consistency ?? 'per-disk',
      ...(run.machine ? { machine: run.machine } : {}),
      tags: [`run:${run.id}`, `vm:${run.vmName}`, ...(run.policyId ? [policyTag(run.policyId)] : [])],
      disks: run.disks.map((d) => ({
        name: d.diskName,
        sizeBytes: d.sizeBytes,
        chunkSize: ctx.repo.config.chunkSize,
        fixedIndex: d.fixedIndex!,
        stats: d.stats!,
        source: {
          diskId: d.diskId,
          snapshotId: d.snapshotId!,
          role: d.role,
          ...(d.lun !== undefined ? { lun: d.lun } : {}),
        },
        ...(d.fullReadReason ? { fullReadReason: d.fullReadReason } : {}),
        ...(d.profile ? { profile: d.profile } : {}),
      })),
    };
    id = await ctx.repo.saveRecoveryPoint(point);
  }
  await ctx.store.recordRecoveryPoint({ id, vmId: run.vmId, runId: run.id, time: point.time, point });
  return next('promote', { recoveryPointId: id });
}

async function promoteStep(ctx: RunContext, run: Run, next: Next) {
  for (const disk of run.disks) {
    const golden = await ctx.store.getGolden(disk.diskId);
    if (golden?.snapshotId !== disk.snapshotId) {
      await ctx.store.setGolden({
        diskId: disk.diskId,
        snapshotId: disk.snapshotId!,
        fixedIndex: disk.fixedIndex!,
        recoveryPointId: run.recoveryPointId!,
      });
    }
  }
  // The old goldens go only now that every disk's new one is promoted (the disk points of one
  // restore point go together). Deleting an absent one is fine, so an interrupted promote repeats.
  for (const disk of run.disks) {
    if (disk.baseSnapshotId && disk.baseSnapshotId !== disk.snapshotId)
      await ctx.cloud.deleteSnapshot(disk.baseSnapshotId);
  }
  return next('retention');
}

async function retentionStep(ctx: RunContext, run: Run, next: Next) {
  const retention = await ctx.store.retentionOf(run);
  if (retention) {
    // A policy thins out only its own points: a VM in an hourly and a monthly policy keeps both.
    const tag = policyTag(run.policyId!);
    const points = (await ctx.store.listRecoveryPoints({ vmId: run.vmId, limit: Number.MAX_SAFE_INTEGER })).filter(
      (e) => e.point.tags.includes(tag),
    );
    for (const d of applyRetention(points, (e) => new Date(e.point.time), retention.policy, retention.timeZone)) {
      // Every rule keeps the newest point, which is the one the golden snapshots belong to.
      if (d.keep || d.item.id === run.recoveryPointId) continue;
      // Catalog first: a crash in between leaves an unlisted point for prune, never a listed one that is gone.
      await ctx.store.forgetRecoveryPoint(d.item.id);
      await ctx.repo.deleteRecoveryPoint(d.item.id);
    }
  }
  return next('succeeded');
}

async function cleanupStep(ctx: RunContext, run: Run, next: Next) {
  // The run's own snapshots, found by tag too in case one was created but not yet recorded.
  const own = new Map<string, CloudSnapshot | undefined>();
  for (const d of run.disks) if (d.snapshotId) own.set(d.snapshotId, undefined);
  for (const s of await ctx.cloud.listGoldsnapSnapshots()) if (s.tags.goldsnapRun === run.id) own.set(s.id, s);
  for (const id of own.keys()) {
    const disk = run.disks.find((d) => d.snapshotId === id);
    const golden = disk ? await ctx.store.getGolden(disk.diskId) : undefined;
    if (golden?.snapshotId === id) continue;
    await ctx.cloud.deleteSnapshot(id);
  }
  await deleteOwnVmPoints(ctx.cloud, run, async (id) => {
    const disk = run.disks.find((d) => d.snapshotId?.toLowerCase() === id.toLowerCase());
    return disk !== undefined && (await ctx.store.getGolden(disk.diskId))?.snapshotId === disk.snapshotId;
  });
  return next('failed');
}
