import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { PackWriter } from '../repository/pack-writer.ts';
import type { RecoveryPoint, DiskRecord } from '../repository/recovery-point.ts';
import type { Repository } from '../repository/repository.ts';
import { RepositorySession } from '../repository/sessions.ts';
import { backupDisk, type Progress } from './backup-disk.ts';
import { parseChangedRanges } from './byte-ranges.ts';
import { openImageReader } from './disk-io.ts';
import { WorkerPool } from './worker-pool.ts';

export interface BackupImageOptions {
  imagePath: string;
  /** Disk name in the recovery point. */
  diskName: string;
  /** What the recovery point is of; retention groups by it. */
  source: string;
  tags?: string[];
  /** Id (or prefix) of the previous recovery point of this disk. */
  parent?: string;
  /** File with the ranges changed since `parent` (JSON list of {offset, length}). */
  changedRangesFile?: string;
  workers?: number;
  onProgress?: (p: Progress) => void;
}

export interface BackupImageResult {
  id: string;
  point: RecoveryPoint;
}

/** Backs up one raw image file or block device as a recovery point with one disk. */
export async function backupImage(repo: Repository, opts: BackupImageOptions): Promise<BackupImageResult> {
  if (opts.changedRangesFile && !opts.parent) {
    throw new Error('--changed needs --parent: changed ranges only mean something against a previous recovery point');
  }
  const reader = await openImageReader(opts.imagePath);
  try {
    let parent;
    let parentId: string | undefined;
    if (opts.parent) {
      const entry = await repo.resolveRecoveryPoint(opts.parent);
      const disk = entry.point.disks.find(d => d.name === opts.diskName) ?? (entry.point.disks.length === 1 ? entry.point.disks[0] : undefined);
      if (!disk) {
        throw new Error(`recovery point ${entry.id.slice(0, 8)} has no disk named ${opts.diskName} (it has ${entry.point.disks.map(d => d.name).join(', ')})`);
      }
      parent = await repo.loadFixedIndex(disk.fixedIndex);
      parentId = entry.id;
    }
    const changed = opts.changedRangesFile
      ? parseChangedRanges(await readFile(opts.changedRangesFile, 'utf8'), reader.sizeBytes, opts.changedRangesFile)
      : undefined;

    const session = await RepositorySession.start(repo, `backup-image ${opts.diskName}`);
    const pool = new WorkerPool(repo.key, opts.workers);
    try {
      const index = await repo.loadIndex(session.excludedPacks);
      const packs = new PackWriter(repo, index);
      const { index: disk, stats } = await backupDisk({ reader, chunkSize: repo.config.chunkSize, pool, packs, parent, changed, onProgress: opts.onProgress });
      await packs.flush();
      const record: DiskRecord = {
        name: opts.diskName, sizeBytes: reader.sizeBytes, chunkSize: repo.config.chunkSize,
        fixedIndex: await repo.saveFixedIndex(disk), stats,
      };
      const point: RecoveryPoint = {
        version: 1, time: new Date().toISOString(), source: opts.source, hostname: hostname(),
        tags: opts.tags ?? [], ...(parentId ? { parent: parentId } : {}), disks: [record],
      };
      return { id: await repo.saveRecoveryPoint(point), point };
    } finally {
      await pool.close();
      await session.end();
    }
  } finally {
    await reader.close();
  }
}
