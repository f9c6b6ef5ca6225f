import type { Repository } from '../repository/repository.ts';
import type { Progress } from './backup-disk.ts';
import { openImageWriter } from './disk-io.ts';
import { restoreDisk } from './restore-disk.ts';
import { WorkerPool } from './worker-pool.ts';

export interface RestoreImageOptions {
  /** Recovery point id or unique prefix. */
  pointId: string;
  /** Which disk of the recovery point; may be omitted when it has only one. */
  diskName?: string;
  targetPath: string;
  workers?: number;
  onProgress?: (p: Progress) => void;
}

/** Restores one disk of a recovery point to an image file or block device, bit for bit. */
export async function restoreImage(repo: Repository, opts: RestoreImageOptions): Promise<{ sizeBytes: number }> {
  const { id, point } = await repo.resolveRecoveryPoint(opts.pointId);
  const names = point.disks.map(d => d.name).join(', ');
  const disk = opts.diskName ? point.disks.find(d => d.name === opts.diskName) : point.disks.length === 1 ? point.disks[0] : undefined;
  if (!disk) {
    throw new Error(opts.diskName
      ? `recovery point ${id.slice(0, 8)} has no disk named ${opts.diskName}; it has ${names}`
      : `recovery point ${id.slice(0, 8)} has several disks (${names}): say which with --disk`);
  }
  const [fixedIndex, index] = await Promise.all([repo.loadFixedIndex(disk.fixedIndex), repo.loadIndex()]);
  const writer = await openImageWriter(opts.targetPath, fixedIndex.sizeBytes);
  const pool = new WorkerPool(repo.key, opts.workers);
  try {
    await restoreDisk({ repo, index, disk: fixedIndex, writer, pool, onProgress: opts.onProgress });
    await writer.commit();
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    await pool.close();
  }
  return { sizeBytes: fixedIndex.sizeBytes };
}
