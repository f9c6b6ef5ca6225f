import { posix } from 'node:path';
import type { DriverFs } from './fuse.ts';
import type { ByteSource } from './lazy-image.ts';
import { run } from './processes.ts';

/** A byte range of a partition, [start, end). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The files whose data lies in the given unreadable ranges of a partition. The FUSE drivers do not
 * always turn a failed read into an error (fuse2fs returns a short read, which looks like the end
 * of the file), so after a copy the damaged ranges are mapped back to files with the file
 * system's own tools: debugfs icheck + ncheck for ext4, ntfscluster for NTFS. Returns undefined
 * when the tool cannot tell (e.g. the damage is in the file system's own metadata).
 */
export async function filesInRanges(
  fs: DriverFs,
  image: string,
  partition: ByteSource,
  ranges: ByteRange[],
): Promise<string[] | undefined> {
  if (ranges.length === 0) return [];
  return fs === 'ext4' ? ext4Files(image, partition, ranges) : ntfsFiles(image, ranges);
}

async function ext4Files(image: string, partition: ByteSource, ranges: ByteRange[]): Promise<string[] | undefined> {
  const superblock = await partition.read(1024, 1024);
  const blockSize = 1024 << superblock.readUInt32LE(24);
  const blocks: number[] = [];
  for (const r of ranges) for (let b = Math.floor(r.start / blockSize); b * blockSize < r.end; b++) blocks.push(b);
  const inodes = new Set<string>();
  for (let i = 0; i < blocks.length; i += 512) {
    const r = await run('debugfs', ['-R', `icheck ${blocks.slice(i, i + 512).join(' ')}`, image]);
    if (r.code !== 0) return undefined;
    for (const line of r.stdout.toString('utf8').split('\n').slice(1)) {
      const m = /^\d+\s+(\d+)$/.exec(line.trim());
      if (m) inodes.add(m[1]);
    }
  }
  if (inodes.size === 0) return [];
  const r = await run('debugfs', ['-R', `ncheck ${[...inodes].join(' ')}`, image]);
  if (r.code !== 0) return undefined;
  const paths = r.stdout
    .toString('utf8')
    .split('\n')
    .slice(1)
    .map((line) => /^\d+\s+(.+)$/.exec(line.trim())?.[1])
    .filter((p): p is string => !!p)
    .map((p) => posix.normalize(p));
  return paths.length ? paths : undefined;
}

async function ntfsFiles(image: string, ranges: ByteRange[]): Promise<string[] | undefined> {
  const paths = new Set<string>();
  for (const r of ranges) {
    const res = await run('ntfscluster', [
      '-f',
      '-s',
      `${Math.floor(r.start / 512)}-${Math.ceil(r.end / 512) - 1}`,
      image,
    ]);
    if (res.code !== 0) return undefined;
    for (const line of res.stdout.toString('utf8').split('\n')) {
      const m = /^Inode \d+ (\/.*?)(\/\$\w+.*)?$/.exec(line.trim());
      if (m) paths.add(posix.normalize(m[1]));
    }
  }
  return [...paths];
}
