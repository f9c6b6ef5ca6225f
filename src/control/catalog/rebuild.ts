import type { Cloud } from '../../cloud/cloud.ts';
import { ObjectType } from '../../repository/format.ts';
import type { Repository } from '../../repository/repository.ts';
import type { SqlRunStore } from './run-store.ts';

/**
 * The repository is the source of truth: recovery points the catalog does not know (a lost or new
 * catalog over an existing repository) are recorded again, and each disk whose newest point was
 * made from a snapshot that still exists gets that snapshot back as its golden one, so the next
 * backup stays incremental. Points not made by the control plane (`repo backup-image`) are left out.
 */
export async function importFromRepository(
  repo: Repository,
  runs: SqlRunStore,
  cloud: Cloud,
  log: (line: string) => void,
): Promise<number> {
  // Only ids are compared at each start; just the points the catalog lacks are read and decrypted.
  const catalogued = await runs.listRecoveryPoints({ limit: Number.MAX_SAFE_INTEGER });
  const known = new Set(catalogued.map((p) => p.id));
  const unknown = (await repo.listIds(ObjectType.recoveryPoint)).filter(({ id }) => !known.has(id));
  let recorded = 0;
  for (const { id } of unknown) {
    const point = await repo.loadRecoveryPoint(id).catch((err: Error) => {
      log(`recovery point ${id.slice(0, 12)} is unreadable (${err.message}): run goldsnap repo check`);
      return undefined;
    });
    if (!point?.source.startsWith('vm:')) continue;
    const runId = point.tags.find((t) => t.startsWith('run:'))?.slice('run:'.length) ?? '';
    await runs.recordRecoveryPoint({ id, vmId: point.source.slice('vm:'.length), runId, time: point.time, point });
    recorded++;
  }
  if (recorded === 0) return 0;
  log(`catalog: recorded ${recorded} recovery points found in the repository`);

  // Newest point per disk: its snapshot is the disk's golden one if it is still there.
  const points = (await runs.listRecoveryPoints({ limit: Number.MAX_SAFE_INTEGER })).reverse(); // oldest first
  const newest = new Map<string, { pointId: string; snapshotId: string; fixedIndex: string }>();
  for (const { id, point } of points) {
    for (const disk of point.disks) {
      const diskId = disk.source?.diskId;
      const snapshotId = disk.source?.snapshotId;
      if (typeof diskId === 'string' && typeof snapshotId === 'string')
        newest.set(diskId, { pointId: id, snapshotId, fixedIndex: disk.fixedIndex });
    }
  }
  for (const [diskId, n] of newest) {
    if (await runs.getGolden(diskId)) continue;
    if (!(await cloud.getSnapshot(n.snapshotId))) continue;
    await runs.setGolden({ diskId, snapshotId: n.snapshotId, fixedIndex: n.fixedIndex, recoveryPointId: n.pointId });
    log(
      `catalog: golden snapshot of ${diskId.split('/').pop()} recovered from recovery point ${n.pointId.slice(0, 12)}`,
    );
  }
  return recorded;
}
