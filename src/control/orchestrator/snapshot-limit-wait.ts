import { SnapshotLimitError } from '../../cloud/snapshot-limits.ts';
import type { Run, RunDisk } from './run-model.ts';

/**
 * How long a run waits, per disk, for Azure's snapshot limits that clear with time (7 per disk per
 * 5 minutes; 3 pending background copies, which can take hours on large Ultra disks) before it
 * fails. Default 30 minutes; tests make it short.
 */
export const SNAPSHOT_LIMIT_WAIT_MS = Number(process.env.GOLDSNAP_SNAPSHOT_LIMIT_WAIT_MS ?? 30 * 60_000);
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;

/**
 * Takes a disk's snapshot with `take`, waiting out Azure's transient snapshot limits: as long as
 * Azure says (Retry-After) or with a doubling back-off, the wait said once on the run, and at
 * most `maxWaitMs` counted from the first refusal (kept on the disk, so a resumed run does not
 * start its wait over). The 500-per-disk limit is not waited for.
 */
export async function withSnapshotLimitWait<T>(
  run: Run,
  disk: RunDisk,
  save: () => Promise<void>,
  take: () => Promise<T>,
  maxWaitMs = SNAPSHOT_LIMIT_WAIT_MS,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await take();
    } catch (err) {
      if (!(err instanceof SnapshotLimitError) || !err.transient) throw err;
      if (!disk.snapshotLimitSince) {
        disk.snapshotLimitSince = new Date().toISOString();
        (run.warnings ??= []).push(
          `disk ${disk.diskName}: Azure refused its snapshot (${err.limit === 'per-window' ? '7 incremental snapshots per disk per 5 minutes' : '3 pending background copies per disk'}); the run waits up to ${Math.round(maxWaitMs / 1000)} s and tries again`,
        );
        await save();
      }
      const remaining = Date.parse(disk.snapshotLimitSince) + maxWaitMs - Date.now();
      if (remaining <= 0) {
        throw new Error(
          `${err.message} Waited ${Math.round(maxWaitMs / 1000)} s for it to clear (GOLDSNAP_SNAPSHOT_LIMIT_WAIT_MS); it did not. Spread this disk's backups further apart or wait, then run again.`,
        );
      }
      const backoff = err.retryAfterMs ?? Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, Math.min(backoff, remaining)));
    }
  }
}
