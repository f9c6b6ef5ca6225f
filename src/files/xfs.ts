import { chmod, lchown, lutimes, mkdir, open, rm, symlink } from 'node:fs/promises';
import { basename, join, posix } from 'node:path';
import type { FetchResult, FileEntry } from './file-ops.ts';
import type { ByteSource } from './lazy-image.ts';
import { run } from './processes.ts';
import { errorMessage } from '../util/errors.ts';

/**
 * XFS, read with xfs_db (xfsprogs) in read-only mode on the lazily-read partition image: `ls`
 * for folders, `inode`/`print` for modes, owners, times and symlink targets, `bmap` for where a
 * file's data lies, which is then read straight from the partition. No FUSE driver for XFS exists
 * in Debian, and the kernel's would need a loop device.
 */
export class XfsReader {
  private readonly image: string;
  private readonly source: ByteSource;
  private geometry?: { blockSize: number; agBlocks: number };

  constructor(image: string, source: ByteSource) {
    this.image = image;
    this.source = source;
  }

  private async db(commands: string[]): Promise<string> {
    const r = await run('xfs_db', ['-r', '-f', this.image, ...commands.flatMap((c) => ['-c', c])], { TZ: 'UTC' });
    return r.stdout.toString('utf8');
  }

  private async geom(): Promise<{ blockSize: number; agBlocks: number }> {
    if (!this.geometry) {
      const sb = await this.source.read(0, 512);
      this.geometry = { blockSize: sb.readUInt32BE(4), agBlocks: sb.readUInt32BE(84) };
    }
    return this.geometry;
  }

  /** Metadata of the inodes at `paths` (resolved with `path`), in order; undefined where absent. */
  private async stat(paths: string[]): Promise<(FileEntry | undefined)[]> {
    const out: (FileEntry | undefined)[] = [];
    for (let i = 0; i < paths.length; i += 200) {
      const batch = paths.slice(i, i + 200);
      const text = await this.db(
        batch.flatMap((p) => [
          'echo @@',
          `path ${quote(p)}`,
          'print core.mode core.uid core.gid core.size core.mtime.sec',
          'print u3.symlink',
        ]),
      );
      const blocks = text.split(/^@@ *\n/m).slice(1);
      for (const [j, block] of blocks.entries()) out.push(parseInode(batch[j], block));
    }
    for (const e of out)
      if (e?.type === 'symlink' && e.target === undefined) e.target = await this.remoteSymlink(e.path, e.size);
    return out;
  }

  async list(path: string, recursive: boolean): Promise<FileEntry[]> {
    const [self] = await this.stat([path]);
    if (!self) throw new Error(`there is no ${path} in this file system`);
    if (self.type !== 'dir') return [self];
    const out: FileEntry[] = [];
    let dirs = [path];
    while (dirs.length) {
      const names = await this.children(dirs);
      const entries = await this.stat(names);
      const next: string[] = [];
      for (const [i, e] of entries.entries()) {
        if (!e) throw new Error(`${names[i]} is listed in its folder but cannot be read: the file system is damaged`);
        out.push(e);
        if (e.type === 'dir' && recursive) next.push(e.path);
      }
      dirs = next;
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** The entries of folders, as paths, without `.` and `..`. */
  private async children(dirs: string[]): Promise<string[]> {
    const out: string[] = [];
    const text = await this.db(dirs.flatMap((d) => ['echo @@', `ls ${quote(d)}`]));
    for (const [i, block] of text
      .split(/^@@ *\n/m)
      .slice(1)
      .entries()) {
      for (const line of block.split('\n')) {
        const m = /^\d+\s+\d+\s+\S+\s+0x[0-9a-f]+\s+(\d+) (.*) \((good|bad)\)$/.exec(line);
        if (!m) continue;
        const name = m[2].slice(0, Number(m[1]));
        if (name !== '.' && name !== '..') out.push(posix.join(dirs[i], name));
      }
    }
    return out;
  }

  /** Where a file's data lies: [file offset, partition offset, length] in bytes; unwritten extents left out. */
  private async extents(path: string): Promise<[number, number, number][]> {
    const { blockSize, agBlocks } = await this.geom();
    const text = await this.db([`path ${quote(path)}`, 'bmap']);
    const out: [number, number, number][] = [];
    for (const m of text.matchAll(/data offset (\d+) startblock \d+ \((\d+)\/(\d+)\) count (\d+) flag (\d)/g)) {
      if (m[5] !== '0') continue;
      out.push([
        Number(m[1]) * blockSize,
        (Number(m[2]) * agBlocks + Number(m[3])) * blockSize,
        Number(m[4]) * blockSize,
      ]);
    }
    return out;
  }

  /** A long symlink target, kept in data blocks (with a 56-byte header per block on XFS v5). */
  private async remoteSymlink(path: string, size: number): Promise<string> {
    const parts: Buffer[] = [];
    for (const [, at, length] of await this.extents(path)) {
      const data = await this.source.read(at, length);
      const v5 = data.toString('latin1', 0, 4) === 'XSLM';
      parts.push(v5 ? data.subarray(56, 56 + data.readUInt32BE(8)) : data);
    }
    return Buffer.concat(parts).subarray(0, size).toString('utf8');
  }

  async fetch(paths: string[], to: string): Promise<FetchResult> {
    await mkdir(to, { recursive: true });
    const result: FetchResult = { files: 0, bytes: 0, errors: [] };
    for (const wanted of paths) {
      let entries: FileEntry[];
      try {
        entries = await this.list(wanted, true);
      } catch (err) {
        result.errors.push({ path: wanted, error: errorMessage(err) });
        continue;
      }
      const [self] = await this.stat([wanted]);
      const base = wanted === '/' ? to : join(to, basename(wanted));
      const all = self!.type === 'dir' ? [self!, ...entries] : entries;
      const dest = (e: FileEntry) => (e.path === wanted ? base : join(base, posix.relative(wanted, e.path)));
      for (const e of all) {
        try {
          if (e.type === 'dir') await mkdir(dest(e), { recursive: true });
          else if (e.type === 'symlink') {
            await rm(dest(e), { force: true });
            await symlink(e.target!, dest(e));
          } else if (e.type === 'file') await this.copyFile(e, dest(e));
          else continue;
          result.files += e.type === 'dir' ? 0 : 1;
          result.bytes += e.type === 'file' ? e.size : 0;
        } catch (err) {
          await rm(dest(e), { recursive: true, force: true });
          result.errors.push({ path: e.path, error: errorMessage(err) });
        }
      }
      // Owners, modes and times last, deepest first, so that writing into a folder does not change its time.
      for (const e of all.reverse()) {
        const d = dest(e);
        if (result.errors.some((x) => x.path === e.path)) continue;
        await lchown(d, e.uid, e.gid);
        if (e.type !== 'symlink') await chmod(d, e.mode);
        const t = new Date(e.mtime);
        await lutimes(d, t, t);
      }
    }
    return result;
  }

  private async copyFile(e: FileEntry, dest: string): Promise<void> {
    const fh = await open(dest, 'w');
    try {
      await fh.truncate(e.size);
      const step = 4 * 1024 * 1024;
      for (const [fileOffset, at, length] of await this.extents(e.path)) {
        const end = Math.min(fileOffset + length, e.size);
        for (let off = fileOffset; off < end; off += step) {
          const n = Math.min(step, end - off);
          await fh.write(await this.source.read(at + (off - fileOffset), n), 0, n, off);
        }
      }
    } finally {
      await fh.close();
    }
  }
}

function quote(path: string): string {
  if (/["\n]/.test(path)) throw new Error(`xfs_db cannot be given the path ${JSON.stringify(path)}`);
  return /\s/.test(path) ? `"${path}"` : path;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function parseInode(path: string, block: string): FileEntry | undefined {
  const field = (name: string) => new RegExp(`^core\\.${name} = (.*)$`, 'm').exec(block)?.[1];
  const mode = field('mode');
  if (mode === undefined) return undefined;
  const bits = parseInt(mode, 8);
  const kind = bits & 0o170000;
  const type: FileEntry['type'] =
    kind === 0o040000 ? 'dir' : kind === 0o100000 ? 'file' : kind === 0o120000 ? 'symlink' : 'other';
  const t = /\w{3} (\w{3})\s+(\d+) (\d\d):(\d\d):(\d\d) (\d+)/.exec(field('mtime.sec') ?? '');
  const mtime = t
    ? new Date(Date.UTC(Number(t[6]), MONTHS.indexOf(t[1]), Number(t[2]), Number(t[3]), Number(t[4]), Number(t[5])))
    : new Date(0);
  // A long target is in data blocks: left undefined here, read by remoteSymlink.
  const target = type === 'symlink' ? /^u3?\.symlink = "(.*)"$/m.exec(block)?.[1] : undefined;
  return {
    path,
    type,
    mode: bits & 0o7777,
    uid: Number(field('uid')),
    gid: Number(field('gid')),
    size: Number(field('size')),
    mtime: mtime.toISOString(),
    ...(target !== undefined ? { target } : {}),
  };
}
