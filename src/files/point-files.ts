import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { ChunkIndex } from '../repository/chunk-index.ts';
import type { DiskRecord } from '../repository/recovery-point.ts';
import type { Repository } from '../repository/repository.ts';
import type { ByteRange } from './damaged-files.ts';
import { FileSystemMount, NbdFuseFile, type DriverFs } from './fuse.ts';
import { ByteWindow, DEFAULT_CACHE_CHUNKS, LazyDiskImage, type ByteSource } from './lazy-image.ts';
import { NbdServer } from './nbd-server.ts';
import { detectFileSystem, readPartitionTable, type FileSystemType, type Partition } from './partitions.ts';

export interface PartitionInfo extends Partition {
  fs: FileSystemType;
}

export interface DiskInfo {
  name: string;
  sizeBytes: number;
  scheme: 'gpt' | 'mbr' | 'none';
  partitions: PartitionInfo[];
}

/** File systems whose files can be listed and fetched. */
const READABLE: Record<string, DriverFs | 'xfs' | undefined> = { ext4: 'ext4', ntfs: 'ntfs', xfs: 'xfs' };

/**
 * The disks of one recovery point, read lazily from the repository: their partition tables, and
 * their file systems mounted read-only (NBD server here → nbdfuse → fuse2fs / ntfs-3g) for as
 * long as a piece of work needs them.
 */
export class PointDisks {
  readonly pointId: string;
  readonly images: Map<string, LazyDiskImage>;
  private readonly records: DiskRecord[];
  /** Clean-ups of the file systems mounted now, for `closeAll`. */
  private readonly active = new Set<() => Promise<void>>();

  private constructor(pointId: string, records: DiskRecord[], images: Map<string, LazyDiskImage>) {
    this.pointId = pointId;
    this.records = records;
    this.images = images;
  }

  static async open(
    repo: Repository,
    pointIdOrPrefix: string,
    opts: { cacheChunks?: number; index?: ChunkIndex } = {},
  ): Promise<PointDisks> {
    const { id, point } = await repo.resolveRecoveryPoint(pointIdOrPrefix);
    const index = opts.index ?? (await repo.loadIndex());
    const images = new Map<string, LazyDiskImage>();
    for (const disk of point.disks) {
      images.set(
        disk.name,
        new LazyDiskImage(
          repo,
          index,
          await repo.loadFixedIndex(disk.fixedIndex),
          disk.name,
          opts.cacheChunks ?? DEFAULT_CACHE_CHUNKS,
        ),
      );
    }
    return new PointDisks(id, point.disks, images);
  }

  /** Chunks fetched from the repository so far, over all disks. */
  get chunksFetched(): number {
    let n = 0;
    for (const image of this.images.values()) n += image.chunksFetched;
    return n;
  }

  disk(name?: string): LazyDiskImage {
    const names = this.records.map((d) => d.name).join(', ');
    const image = name ? this.images.get(name) : this.images.size === 1 ? [...this.images.values()][0] : undefined;
    if (!image) {
      throw new Error(
        name
          ? `recovery point ${this.pointId.slice(0, 8)} has no disk named ${name}; it has ${names}`
          : `recovery point ${this.pointId.slice(0, 8)} has several disks (${names}): say which with --disk`,
      );
    }
    return image;
  }

  async describe(): Promise<DiskInfo[]> {
    const out: DiskInfo[] = [];
    for (const image of this.images.values()) {
      const table = await readPartitionTable(image);
      const partitions = [];
      for (const p of table.partitions)
        partitions.push({ ...p, fs: await detectFileSystem(new ByteWindow(image, p.start, p.sizeBytes)) });
      out.push({ name: image.name, sizeBytes: image.sizeBytes, scheme: table.scheme, partitions });
    }
    return out;
  }

  /** The partition to browse: the one asked for, or the only one with a readable file system. */
  async partition(
    diskName: string | undefined,
    number: number | undefined,
  ): Promise<{ image: LazyDiskImage; partition: PartitionInfo }> {
    const image = this.disk(diskName);
    const info = (await this.describe()).find((d) => d.name === image.name)!;
    const list = info.partitions.map((p) => `${p.number} (${p.fs})`).join(', ');
    if (number !== undefined) {
      const partition = info.partitions.find((p) => p.number === number);
      if (!partition) throw new Error(`disk ${image.name} has no partition ${number}; it has ${list || 'none'}`);
      return { image, partition };
    }
    const readable = info.partitions.filter((p) => READABLE[p.fs]);
    if (readable.length === 1) return { image, partition: readable[0] };
    if (readable.length === 0)
      throw new Error(
        `disk ${image.name} has no file system goldsnap can read (partitions: ${list || 'none'}); ext4, XFS and NTFS are supported`,
      );
    throw new Error(`disk ${image.name} has several file systems (partitions ${list}): say which with --partition`);
  }

  /**
   * Mounts one partition's file system read-only in a private temporary folder, runs `work` with
   * its root, and unmounts whatever happens. `work` must only use other processes or async
   * calls on the mount: this process serves its bytes.
   */
  async withFileSystem<T>(
    target: { image: LazyDiskImage; partition: PartitionInfo },
    work: (mounted: MountedFileSystem) => Promise<T>,
    onReadError?: (err: Error) => void,
  ): Promise<T> {
    const { image, partition } = target;
    const driver = READABLE[partition.fs];
    if (!driver)
      throw new Error(
        `partition ${partition.number} of disk ${image.name} holds ${partition.fs === 'unknown' ? 'no file system goldsnap recognises' : partition.fs}; ext4, XFS and NTFS can be read`,
      );
    const scratch = await mkdtemp(join(tmpdir(), 'goldsnap-files-'));
    const source: ByteSource = new ByteWindow(image, partition.start, partition.sizeBytes);
    let server: NbdServer | undefined;
    let file: NbdFuseFile | undefined;
    let fs: FileSystemMount | undefined;
    let cleaned: Promise<void> | undefined;
    const cleanup = () =>
      (cleaned ??= (async () => {
        await fs?.unmount();
        await file?.unmount();
        await server?.close();
        await rm(scratch, { recursive: true, force: true });
      })());
    this.active.add(cleanup);
    try {
      server = await NbdServer.listen(join(scratch, 'nbd.sock'), new Map([['part', source]]), {
        onReadError: (_n, _o, _l, err) => onReadError?.(err),
      });
      file = await NbdFuseFile.mount(
        server.socketPath,
        'part',
        join(scratch, 'image'),
        'part.img',
        join(scratch, 'nbdfuse.pid'),
      );
      // XFS has no FUSE driver: xfs_db reads the image itself.
      if (driver !== 'xfs') fs = await FileSystemMount.mount(driver, file.path, join(scratch, 'root'));
      const part = partition;
      return await work({
        root: fs?.root ?? '',
        image: file.path,
        fs: driver,
        source,
        damagedRanges: () =>
          [...image.damaged.keys()]
            .sort((a, b) => a - b)
            .flatMap((p) => {
              const start = Math.max(p * image.chunkSize, part.start);
              const end = Math.min((p + 1) * image.chunkSize, part.start + part.sizeBytes);
              return end > start ? [{ start: start - part.start, end: end - part.start }] : [];
            }),
      });
    } finally {
      await cleanup();
      this.active.delete(cleanup);
    }
  }

  /**
   * Unmounts whatever is mounted now and removes its scratch folders: for a command interrupted
   * by Ctrl-C or SIGTERM, which must not leave FUSE mounts behind.
   */
  async closeAll(): Promise<void> {
    await Promise.all([...this.active].map((c) => c().catch(() => undefined)));
  }
}

/** A partition's file system, mounted read-only for a piece of work. */
export interface MountedFileSystem {
  root: string;
  /** The partition as an image file (nbdfuse), for tools that read file systems from images. */
  image: string;
  fs: DriverFs | 'xfs';
  source: ByteSource;
  /** Partition-relative byte ranges of the chunks that could not be read so far. */
  damagedRanges: () => ByteRange[];
}

/** A path inside a file system, made absolute and kept inside it ("/../x" is "/x"). */
export function fsPath(path: string | undefined): string {
  return posix.normalize(`/${path ?? ''}`).replace(/(.)\/$/, '$1');
}
