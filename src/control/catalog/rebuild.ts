import type { Cloud } from '../../cloud/cloud.ts';
import type { Repository } from '../../repository/repository.ts';
import type { SqlRunStore } from './run-store.ts';

/**
 * The repository is the source of truth: recovery points the catalog does not know (a lost or new
 * catalog over an existing repository) are recorded again, and each disk whose newest point was
 * made from a snapshot that still exists gets that snapshot back as its golden one, so the next
 * backup stays incremental. Points not made by the control plane (`repo backup-image`) are left out.
 */
export async function importFromRepository(repo: Repository, runs: SqlRunStore, cloud: Cloud, log: (line: string) => void): Promise<number> {
  const known = new Set((await runs.listRecoveryPoints({ limit: Number.MAX_SAFE_INTEGER })).map((p) => p.id));
  const points = await repo.listRecoveryPoints((id, err) => log(`recovery point ${id.slice(0, 12)} is unreadable (${err.message}): run goldsnap repo check`));
  const missing = points.filter((e) => !known.has(e.id) && e.point.source.startsWith('vm:'));
  for (const { id, point } of missing) {
    const runId = point.tags.find((t) => t.startsWith('run:'))?.slice('run:'.length) ?? '';
    await runs.recordRecoveryPoint({ id, vmId: point.source.slice('vm:'.length), runId, time: point.time, point });
  }
  if (missing.length === 0) return 0;
  log(`catalog: recorded ${missing.length} recovery points found in the repository`);

  // Newest point per disk (points are oldest first): its snapshot is the disk's golden one if it is still there.
  const newest = new Map<string, { pointId: string; snapshotId: string; fixedIndex: string }>();
  for (const { id, point } of points.filter((e) => e.point.source.startsWith('vm:'))) {
    for (const disk of point.disks) {
      const diskId = disk.source?.diskId;
      const snapshotId = disk.source?.snapshotId;
      if (typeof diskId === 'string' && typeof snapshotId === 'string') newest.set(diskId, { pointId: id, snapshotId, fixedIndex: disk.fixedIndex });
    }
  }
  for (const [diskId, n] of newest) {
    if (await runs.getGolden(diskId)) continue;
    if (!(await cloud.getSnapshot(n.snapshotId))) continue;
    await runs.setGolden({ diskId, snapshotId: n.snapshotId, fixedIndex: n.fixedIndex, recoveryPointId: n.pointId });
    log(`catalog: golden snapshot of ${diskId.split('/').pop()} recovered from recovery point ${n.pointId.slice(0, 12)}`);
  }
  return missing.length;
}
