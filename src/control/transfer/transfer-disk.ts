import { backupDisk, type Progress } from '../../dataplane/backup-disk.ts';
import { throttleReader } from '../../dataplane/throttle.ts';
import type { ChunkCodec } from '../../dataplane/chunk-codec.ts';
import type { Cloud, CloudSnapshot } from '../../cloud/cloud.ts';
import { DiffRefusedError } from '../../cloud/diff-refused.ts';
import { FixedIndex } from '../../repository/fixed-index.ts';
import { PackWriter } from '../../repository/pack-writer.ts';
import type { DiskBackupStats } from '../../repository/recovery-point.ts';
import type { Repository } from '../../repository/repository.ts';
import { RepositorySession } from '../../repository/sessions.ts';

export interface TransferRequest {
  snapshot: CloudSnapshot;
  /** The disk's golden snapshot, base of the incremental; absent for the first backup. */
  base?: CloudSnapshot;
  /** Fixed index of the disk at the recovery point made from `base`. */
  parentFixedIndex?: string;
  onProgress?: (p: Progress) => void;
  /** Read limit in bytes per second (0 or absent: none). */
  bandwidth?: number;
}

export interface TransferResult {
  fixedIndex: string;
  sizeBytes: number;
  chunkSize: number;
  stats: DiskBackupStats;
  /** Whether only the changed blocks were read (false: the first, full read). */
  incremental: boolean;
  /** Why a disk with a golden snapshot was read in full (the cloud refused the diff). */
  fullReadReason?: string;
}

/**
 * What a data proxy does for one disk: read from the snapshot only what it must — the allocated
 * ranges the first time, the ranges changed since the golden snapshot after — and store it in the
 * repository. The fixed index is stored; the recovery point is committed later by the orchestrator
 * once every disk of the VM is transferred.
 */
export async function transferDisk(
  repo: Repository,
  cloud: Cloud,
  codec: ChunkCodec,
  req: TransferRequest,
): Promise<TransferResult> {
  // Without the parent's fixed index (forgotten and pruned by hand), the disk is read in full again.
  let parent =
    req.base && req.parentFixedIndex
      ? await repo.loadFixedIndex(req.parentFixedIndex).catch(() => undefined)
      : undefined;
  let fullReadReason: string | undefined;
  let ranges = parent
    ? await cloud.changedRanges(req.base!, req.snapshot).catch((err: unknown) => {
        // Azure computes no diff across snapshot families or a resize past 4 TiB: read the disk in full.
        if (!(err instanceof DiffRefusedError)) throw err;
        fullReadReason = err.reason;
        return undefined;
      })
    : undefined;
  if (fullReadReason) parent = undefined;
  const incremental = Boolean(parent);
  // A first backup reads the allocated ranges over an all-zero parent: what is never written stays zero.
  ranges ??= await cloud.allocatedRanges(req.snapshot);
  const opened = await cloud.openSnapshot(req.snapshot);
  const reader = req.bandwidth ? throttleReader(opened, req.bandwidth) : opened;
  let session: RepositorySession | undefined;
  try {
    session = await RepositorySession.start(repo, `transfer ${req.snapshot.name}`);
    const index = await repo.loadIndex(session.excludedPacks);
    const packs = new PackWriter(repo, index);
    const { index: disk, stats } = await backupDisk({
      reader,
      chunkSize: repo.config.chunkSize,
      codec,
      packs,
      changed: ranges,
      onProgress: req.onProgress,
      parent: parent ?? new FixedIndex(req.snapshot.sizeBytes, repo.config.chunkSize),
    });
    await packs.flush();
    const fixedIndex = await repo.saveFixedIndex(disk);
    return {
      fixedIndex,
      sizeBytes: disk.sizeBytes,
      chunkSize: disk.chunkSize,
      stats,
      incremental,
      ...(fullReadReason ? { fullReadReason } : {}),
    };
  } finally {
    await session?.end();
    await reader.close();
  }
}
