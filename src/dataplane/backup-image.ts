import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { PackWriter } from '../repository/pack-writer.ts';
import type { RecoveryPoint, DiskRecord } from '../repository/recovery-point.ts';
import type { Repository } from '../repository/repository.ts';
import { RepositorySession } from '../repository/sessions.ts';
import { backupDisk, type Progress } from './backup-disk.ts';
import { parseChangedRanges } from './byte-ranges.ts';
import { openImageReader } from './disk-io.ts';
import { ChunkCodec } from './chunk-codec.ts';
import { describeFsError } from '../repository/backend/fs-errors.ts';

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
      const disk = parentDisk(entry.id, entry.point, opts.diskName, opts.source);
      parent = await repo.loadFixedIndex(disk.fixedIndex);
      parentId = entry.id;
    }
    const changed = opts.changedRangesFile
      ? parseChangedRanges(
          await readChangedRangesFile(opts.changedRangesFile),
          reader.sizeBytes,
          opts.changedRangesFile,
        )
      : undefined;

    const session = await RepositorySession.start(repo, `backup-image ${opts.diskName}`);
    const codec = new ChunkCodec(repo.key, opts.workers);
    try {
      const index = await repo.loadIndex(session.excludedPacks);
      const packs = new PackWriter(repo, index);
      let disk, stats;
      try {
        ({ index: disk, stats } = await backupDisk({
          reader,
          chunkSize: repo.config.chunkSize,
          codec,
          packs,
          parent,
          changed,
          onProgress: opts.onProgress,
        }));
        await packs.flush();
      } catch (err) {
        // Give back what this failed backup stored (a full disk needs the space).
        await packs.abandon();
        throw err;
      }
      const record: DiskRecord = {
        name: opts.diskName,
        sizeBytes: reader.sizeBytes,
        chunkSize: repo.config.chunkSize,
        fixedIndex: await repo.saveFixedIndex(disk),
        stats,
      };
      const point: RecoveryPoint = {
        version: 1,
        time: new Date().toISOString(),
        source: opts.source,
        hostname: hostname(),
        tags: opts.tags ?? [],
        ...(parentId ? { parent: parentId } : {}),
        disks: [record],
      };
      return { id: await repo.saveRecoveryPoint(point), point };
    } finally {
      await session.end();
    }
  } finally {
    await reader.close();
  }
}

/**
 * The parent's disk that this backup continues: the one of the same name, of a recovery point of
 * the same source. Anything looser would let `--parent` of another disk pass, and the new point
 * would take that disk's chunks wherever the changed ranges say nothing changed.
 */
function parentDisk(pointId: string, point: RecoveryPoint, diskName: string, source: string): DiskRecord {
  const short = pointId.slice(0, 8);
  const disk = point.disks.find((d) => d.name === diskName);
  if (!disk) {
    throw new Error(
      `recovery point ${short} has no disk named ${diskName} (it has ${point.disks.map((d) => d.name).join(', ')}): ` +
        'give --name as the disk was named in its previous backup, or leave out --parent for a full backup',
    );
  }
  if (point.source !== source) {
    throw new Error(
      `recovery point ${short} is of source ${point.source}, but this backup is of ${source}: ` +
        `give --source ${JSON.stringify(point.source)} if this really is the same disk, or leave out --parent for a full backup`,
    );
  }
  return disk;
}

async function readChangedRangesFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw describeFsError(err, 'read the changed-ranges file', path);
  }
}
