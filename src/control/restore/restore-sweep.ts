import type { Cloud } from '../../cloud/cloud.ts';
import type { ControlQueue } from '../jobs.ts';

/**
 * Deletes the disks of restores that failed for good. A restore deletes what it made when it fails,
 * but not when its data proxy dies on the last attempt: then the job fails when its lease runs out,
 * and the disks it made are found here by their tags (goldsnapRestore = the restore's id). Disks
 * attached to a VM are never touched: a VM was made from them, so that restore had finished.
 */
export async function sweepFailedRestores(
  cloud: Cloud,
  queue: ControlQueue,
  log: (line: string) => void,
): Promise<string[]> {
  if (!cloud.listGoldsnapDisks) return [];
  const failed = new Set(
    (
      await queue.db.query<{ restore_id: string | null }>(
        `SELECT payload->>'restoreId' AS restore_id FROM jobs WHERE kind = 'restore' AND state = 'failed'`,
      )
    ).map((r) => r.restore_id),
  );
  const deleted: string[] = [];
  for (const disk of await cloud.listGoldsnapDisks()) {
    const restoreId = disk.tags.goldsnapRestore;
    if (!restoreId || !failed.has(restoreId) || disk.attached) continue;
    await cloud.deleteDisk(disk.id);
    log(`disk ${disk.id.split('/').pop()} of failed restore ${restoreId.slice(0, 8)} was left behind: deleted`);
    deleted.push(disk.id);
  }
  return deleted;
}
