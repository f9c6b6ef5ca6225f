/**
 * Where a sparse image file holds data, from the file system: lseek(2) with SEEK_DATA and
 * SEEK_HOLE, the interface cp, tar and rsync use (ext4, XFS, btrfs, tmpfs, NFS 4.2 and others
 * answer it; a file system that does not know says "all data", which is still right). Node has no
 * lseek, so libc's is called through koffi, an FFI whose prebuilt binary comes with its npm
 * package (no compiler, no install script, no native code of ours).
 *
 * Holes read as zeros, so a backup makes their chunks zero chunks without reading them: a 16 GiB
 * image with 2 GiB of data costs 2 GiB of reads, not 16.
 */
import koffi from 'koffi';
import type { ByteRange } from './byte-ranges.ts';

const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;

type Lseek = (fd: number, offset: number, whence: number) => number | bigint;
let lseek: Lseek | null | undefined;

/** libc's lseek, or null where it cannot be had (not Linux, another libc): then files are read whole. */
function libcLseek(): Lseek | null {
  if (lseek !== undefined) return lseek;
  lseek = null;
  if (process.platform !== 'linux') return lseek;
  for (const name of ['libc.so.6', 'libc.musl-x86_64.so.1', 'libc.musl-aarch64.so.1']) {
    try {
      lseek = koffi.load(name).func('int64_t lseek(int fd, int64_t offset, int whence)') as Lseek;
      break;
    } catch {
      // Not this libc; try the next.
    }
  }
  return lseek;
}

/**
 * The ranges of the open file `fd` (of `size` bytes) that hold data, sorted; everything else is a
 * hole. Undefined when the file system cannot tell: then all of it must be read.
 */
export function dataRanges(fd: number, size: number): ByteRange[] | undefined {
  const seek = libcLseek();
  if (!seek) return undefined;
  const ranges: ByteRange[] = [];
  let offset = 0;
  while (offset < size) {
    const data = Number(seek(fd, offset, SEEK_DATA));
    if (data < 0) {
      // ENXIO: no data from `offset` to the end. Anything else (EINVAL: not supported): read all.
      if (koffi.errno() === ENXIO) break;
      return undefined;
    }
    if (data >= size) break;
    const hole = Number(seek(fd, data, SEEK_HOLE));
    if (hole < 0) return undefined;
    const end = Math.min(hole, size);
    ranges.push({ offset: data, length: end - data });
    offset = end;
  }
  return ranges;
}

/** Whether [offset, offset + length) meets any of `ranges` (sorted, as `dataRanges` gives them). */
export function touchesData(ranges: readonly ByteRange[], offset: number, length: number): boolean {
  // Binary search for the last range starting before the end of the span.
  let lo = 0;
  let hi = ranges.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ranges[mid].offset < offset + length) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found >= 0 && ranges[found].offset + ranges[found].length > offset;
}
