import { open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';

/** A source of disk bytes: an image file, a block device, or (later) a cloud snapshot. */
export interface DiskReader {
  readonly sizeBytes: number;
  /** Fills `into` with the `into.length` bytes at `offset`. */
  read(offset: number, into: Uint8Array): Promise<void>;
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
  const sizeBytes = await sizeOf(path).catch(err => {
    throw new Error(`cannot read image ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  const fh = await open(path, 'r');
  return {
    sizeBytes,
    async read(offset, into) {
      let done = 0;
      while (done < into.length) {
        const { bytesRead } = await fh.read(into, done, into.length - done, offset + done);
        if (bytesRead === 0) throw new Error(`${path} ended at ${offset + done} bytes while reading; did it shrink during the backup?`);
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
export async function openImageWriter(path: string, sizeBytes: number): Promise<DiskWriter> {
  const existing = await stat(path).catch(() => undefined);
  if (existing?.isBlockDevice()) {
    const size = await sizeOf(path);
    if (size < sizeBytes) throw new Error(`block device ${path} holds ${size} bytes, but the disk to restore has ${sizeBytes}`);
    const fh = await open(path, 'r+');
    return fileWriter(fh, false, async () => { await fh.sync(); await fh.close(); }, () => fh.close());
  }
  if (existing && !existing.isFile()) throw new Error(`${path} exists and is neither a regular file nor a block device`);
  const partial = `${path}.goldsnap-partial`;
  const fh = await open(partial, 'w');
  await fh.truncate(sizeBytes);
  return fileWriter(fh, true,
    async () => { await fh.sync(); await fh.close(); await rename(partial, path); },
    async () => { await fh.close().catch(() => {}); await unlink(partial).catch(() => {}); });
}

function fileWriter(fh: FileHandle, zeroFilled: boolean, commit: () => Promise<void>, abort: () => Promise<void>): DiskWriter {
  return {
    zeroFilled,
    async write(offset, data) {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
    },
    commit,
    abort,
  };
}
