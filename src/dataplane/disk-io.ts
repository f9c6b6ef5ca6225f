import { open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { describeFsError } from '../repository/backend/fs-errors.ts';
import type { ByteRange } from './byte-ranges.ts';
import { dataRanges } from './sparse-map.ts';

/** A source of disk bytes: an image file, a block device, or (later) a cloud snapshot. */
export interface DiskReader {
  readonly sizeBytes: number;
  /**
   * How many reads this source wants in flight (default: what the chunk codec needs). A source
   * over the network, whose every read waits a round trip, hides that wait with more.
   */
  readonly readAhead?: number;
  /** Fills `into` with the `into.length` bytes at `offset`. */
  read(offset: number, into: Uint8Array): Promise<void>;
  /**
   * Where the disk holds data, sorted, when the source knows (a sparse image file): the rest reads
   * as zeros and need not be read. Undefined: every byte may be data.
   */
  readonly dataRanges?: readonly ByteRange[];
  close(): Promise<void>;
}

/** Where a restore writes: an image file, a block device, or (later) a new cloud disk. */
export interface DiskWriter {
  /** True when unwritten areas already read as zeros (a new sparse file, a new cloud disk). */
  readonly zeroFilled: boolean;
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Makes the written content durable and visible under its final name. */
  commit(): Promise<void>;
  /** Drops a failed restore: nothing half-written stays under the final name. */
  abort(): Promise<void>;
}

/** Size of a regular file, or of a block device (stat says 0 for those; sysfs knows). */
async function sizeOf(path: string): Promise<number> {
  const s = await stat(path);
  if (s.isFile()) return s.size;
  if (s.isBlockDevice()) {
    const major = Number((BigInt(s.rdev) >> 8n) & 0xfffn);
    const minor = Number((BigInt(s.rdev) & 0xffn) | ((BigInt(s.rdev) >> 12n) & ~0xffn));
    const sectors = await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
    return Number(sectors.trim()) * 512;
  }
  throw new Error(`${path} is neither a regular file nor a block device`);
}

export async function openImageReader(path: string): Promise<DiskReader> {
  const sizeBytes = await sizeOf(path).catch((err) => {
    throw new Error(
      `cannot read image ${path}: ${err.code === 'ENOENT' ? 'no such file' : describeFsError(err, 'read it', path).message.replace(/^cannot read it: /, '')}`,
    );
  });
  const fh = await open(path, 'r');
  // A regular file may be sparse; a block device says it is all data, so asking costs nothing.
  const ranges = (await stat(path)).isFile() ? dataRanges(fh.fd, sizeBytes) : undefined;
  return {
    sizeBytes,
    dataRanges: ranges,
    async read(offset, into) {
      let done = 0;
      while (done < into.length) {
        const { bytesRead } = await fh.read(into, done, into.length - done, offset + done);
        if (bytesRead === 0)
          throw new Error(`${path} ended at ${offset + done} bytes while reading; did it shrink during the backup?`);
        done += bytesRead;
      }
    },
    close: () => fh.close(),
  };
}

/**
 * A restore target. A regular file is written under a temporary name and renamed when complete,
 * so a failed restore never leaves a plausible-looking image behind; it starts sparse, so zero
 * chunks need no writes. A block device is written in place, zeros included.
 */
export async function openImageWriter(
  path: string,
  sizeBytes: number,
  opts: { overwrite?: boolean } = {},
): Promise<DiskWriter> {
  const existing = await stat(path).catch(() => undefined);
  if (existing?.isBlockDevice()) {
    const size = await sizeOf(path);
    if (size < sizeBytes)
      throw new Error(`block device ${path} holds ${size} bytes, but the disk to restore has ${sizeBytes}`);
    const fh = await open(path, 'r+');
    return fileWriter(
      fh,
      path,
      false,
      async () => {
        await fh.sync();
        await fh.close();
      },
      () => fh.close(),
    );
  }
  if (existing && !existing.isFile())
    throw new Error(`${path} exists and is neither a regular file nor a block device`);
  if (existing && !opts.overwrite)
    throw new Error(`${path} already exists: choose another target, or give --force to replace it`);
  const partial = `${path}.goldsnap-partial`;
  // 0600: a restored image is a whole disk's plaintext, for its owner only (the mode given to open
  // applies to a new file only: a partial file left by a killed restore is replaced, not reused).
  await unlink(partial).catch(() => {});
  const fh = await open(partial, 'wx', 0o600).catch((err) => {
    throw describeFsError(err, 'create the restored image', partial);
  });
  await fh.truncate(sizeBytes).catch(async (err) => {
    await fh.close();
    await unlink(partial).catch(() => {});
    throw describeFsError(err, 'create the restored image', partial);
  });
  return fileWriter(
    fh,
    path,
    true,
    async () => {
      await fh.sync();
      await fh.close();
      await rename(partial, path);
    },
    async () => {
      await fh.close().catch(() => {});
      await unlink(partial).catch(() => {});
    },
  );
}

function fileWriter(
  fh: FileHandle,
  path: string,
  zeroFilled: boolean,
  commit: () => Promise<void>,
  abort: () => Promise<void>,
): DiskWriter {
  return {
    zeroFilled,
    async write(offset, data) {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done).catch((err) => {
          throw describeFsError(err, 'write the restored image', path);
        });
        done += bytesWritten;
      }
    },
    commit,
    abort,
  };
}
