import { FileSystemError } from '../repository/backend/fs-errors.ts';
import type { Repository } from '../repository/repository.ts';
import { RepositorySession } from '../repository/sessions.ts';
import type { Progress } from './backup-disk.ts';
import { openImageWriter } from './disk-io.ts';
import { restoreDisk, type RestoreDiskResult } from './restore-disk.ts';
import { ChunkCodec } from './chunk-codec.ts';
import { errorMessage } from '../util/errors.ts';

export interface RestoreImageOptions {
  /** Recovery point id or unique prefix. */
  pointId: string;
  /** Which disk of the recovery point; may be omitted when it has only one. */
  diskName?: string;
  targetPath: string;
  /** Replace an existing target file (never done otherwise). */
  overwrite?: boolean;
  /** Restore all that can be read; write zeros where chunks are damaged and list those ranges. */
  salvage?: boolean;
  workers?: number;
  onProgress?: (p: Progress) => void;
}

/**
 * Restores one disk of a recovery point to an image file or block device, bit for bit. Holds a
 * repository session while it reads, so that a prune that starts meanwhile waits for it.
 */
export async function restoreImage(
  repo: Repository,
  opts: RestoreImageOptions,
): Promise<{ sizeBytes: number } & RestoreDiskResult> {
  const { id, point } = await repo.resolveRecoveryPoint(opts.pointId);
  const names = point.disks.map((d) => d.name).join(', ');
  const disk = opts.diskName
    ? point.disks.find((d) => d.name === opts.diskName)
    : point.disks.length === 1
      ? point.disks[0]
      : undefined;
  if (!disk) {
    throw new Error(
      opts.diskName
        ? `recovery point ${id.slice(0, 8)} has no disk named ${opts.diskName}; it has ${names}`
        : `recovery point ${id.slice(0, 8)} has several disks (${names}): say which with --disk`,
    );
  }
  const session = await RepositorySession.start(repo, `restore-image ${id.slice(0, 8)} ${disk.name}`);
  try {
    // A damaged index file need not stop a restore that needs none of its chunks; one that does
    // is told to repair the index.
    const loadIndex = () => repo.loadIndex(undefined, () => {});
    const [fixedIndex, index] = await Promise.all([repo.loadFixedIndex(disk.fixedIndex), loadIndex()]);
    const writer = await openImageWriter(opts.targetPath, fixedIndex.sizeBytes, { overwrite: opts.overwrite });
    const codec = new ChunkCodec(repo.key, opts.workers);
    try {
      const result = await restoreDisk({
        repo,
        index,
        disk: fixedIndex,
        writer,
        codec,
        onProgress: opts.onProgress,
        salvage: opts.salvage,
        reloadIndex: loadIndex,
      });
      await writer.commit();
      return { sizeBytes: fixedIndex.sizeBytes, ...result };
    } catch (err) {
      await writer.abort();
      // Salvage helps with damaged repository data, not with a target that cannot be written.
      if (opts.salvage || err instanceof FileSystemError) throw err;
      throw new Error(
        `${errorMessage(err)}\nnothing was restored; \`restore-image --salvage\` restores everything that can be read and lists what cannot`,
      );
    }
  } finally {
    await session.end();
  }
}
