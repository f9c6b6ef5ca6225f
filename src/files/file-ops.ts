import { lstat, mkdir, readdir, rm, utimes } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { filesInRanges } from './damaged-files.ts';
import { fsPath, type MountedFileSystem } from './point-files.ts';
import { run } from './processes.ts';
import { XfsReader } from './xfs.ts';

export interface FileEntry {
  /** Absolute path inside the file system. */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Permission bits (with setuid, setgid, sticky), e.g. 0o755. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: string;
  /** Where a symlink points. */
  target?: string;
}

const TYPES: Record<string, FileEntry['type']> = { f: 'file', d: 'dir', l: 'symlink' };
const FIELDS = 9;

/**
 * Lists `path` of a mounted file system: a folder's entries (all of its tree with `recursive`),
 * or the file itself. `find` does the walking in its own process.
 */
export async function listFiles(mounted: MountedFileSystem, path: string, recursive = false): Promise<FileEntry[]> {
  const base = fsPath(path);
  if (mounted.fs === 'xfs') return new XfsReader(mounted.image, mounted.source).list(base, recursive);
  const root = mounted.root;
  const start = join(root, base);
  const r = await run('find', [
    start,
    ...(recursive ? [] : ['-maxdepth', '1']),
    '-printf',
    '%d\\0%y\\0%m\\0%U\\0%G\\0%s\\0%T@\\0%l\\0%P\\0',
  ]);
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr) && !r.stdout.length)
      throw new Error(`there is no ${base} in this file system`);
    throw new Error(`listing ${base} failed: ${mountPathsToFs(r.stderr, root).trim()}`);
  }
  const fields = r.stdout.toString('utf8').split('\0');
  const out: FileEntry[] = [];
  for (let i = 0; i + FIELDS <= fields.length; i += FIELDS) {
    const [depth, y, m, uid, gid, size, time, target, rel] = fields.slice(i, i + FIELDS);
    const type = TYPES[y] ?? 'other';
    if (depth === '0' && type === 'dir') continue;
    out.push({
      path: rel ? posix.join(base, rel) : base,
      type,
      mode: parseInt(m, 8),
      uid: Number(uid),
      gid: Number(gid),
      size: Number(size),
      mtime: new Date(Math.round(Number(time) * 1000)).toISOString(),
      ...(type === 'symlink' ? { target } : {}),
    });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Entries whose name matches a shell-style pattern (`*`, `?`, case-insensitive), for searching a
 * tree by name: `*.conf`, `report*`.
 */
export function matchingName(entries: FileEntry[], pattern: string): FileEntry[] {
  const source = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  const re = new RegExp(`^${source}$`, 'i');
  return entries.filter((e) => re.test(posix.basename(e.path)));
}

export interface FetchResult {
  files: number;
  bytes: number;
  /** Files or folders that could not be read (e.g. a damaged chunk), with why; none of their bytes were kept. */
  errors: { path: string; error: string }[];
}

/**
 * Copies `paths` of a mounted file system into `to`, each under its own name, folders
 * recursively, with modes, owners, times and symlinks kept (`cp -a`). An unreadable file is
 * named in `errors` and removed from `to`; the others still come back.
 */
export async function fetchFiles(mounted: MountedFileSystem, paths: string[], to: string): Promise<FetchResult> {
  const wanted = paths.map(fsPath);
  if (mounted.fs === 'xfs') return new XfsReader(mounted.image, mounted.source).fetch(wanted, to);
  const root = mounted.root;
  await mkdir(to, { recursive: true });
  const sources = wanted.map((p) => (p === '/' ? `${root}/.` : join(root, p)));
  const r = await run('cp', ['-a', '--', ...sources, `${to}/`]);
  const errors: FetchResult['errors'] = [];
  for (const line of r.stderr.split('\n').filter(Boolean)) {
    const m = /'([^']+)'/.exec(line);
    const inFs = m && (m[1] === root || m[1].startsWith(`${root}/`)) ? m[1].slice(root.length) || '/' : undefined;
    const error =
      line
        .replace(/^cp: /, '')
        .replace(/'[^']*'/g, '')
        .replace(/^[^:]*: /, '')
        .trim() || line;
    const path = inFs ?? mountPathsToFs(line, root);
    if (errors.some((e) => e.path === path)) continue;
    errors.push({ path, error: /No such file or directory/.test(line) ? 'there is no such file or folder' : error });
    const dest = inFs ? destinationOf(inFs, wanted, to) : undefined;
    if (dest) await removeKeepingParentTime(dest);
  }
  if (r.code !== 0 && errors.length === 0) errors.push({ path: wanted.join(' '), error: `cp exited ${r.code}` });
  // A driver may have ended a file early at a damaged chunk instead of failing the read: find
  // the files that own damaged bytes and treat them as failed.
  const damaged = mounted.damagedRanges();
  if (damaged.length) {
    const owners = await filesInRanges(mounted.fs, mounted.image, mounted.source, damaged);
    if (!owners) {
      errors.push({
        path: wanted.join(' '),
        error:
          'parts of the file system could not be read and the files they belong to could not be told: what was fetched may be incomplete',
      });
    } else {
      for (const path of owners) {
        const dest = destinationOf(path, wanted, to);
        if (!dest) continue;
        if (!errors.some((e) => e.path === path))
          errors.push({ path, error: 'Input/output error: part of its data is in a damaged chunk' });
        await removeKeepingParentTime(dest);
      }
    }
  }
  let files = 0;
  let bytes = 0;
  const count = async (p: string) => {
    const s = await lstat(p);
    if (s.isDirectory()) {
      for (const name of await readdir(p)) await count(join(p, name));
      return;
    }
    files++;
    if (s.isFile()) bytes += s.size;
  };
  for (const w of wanted) await count(w === '/' ? to : join(to, basename(w))).catch(() => undefined);
  return { files, bytes, errors };
}

/** Removes a partly copied file; its folder keeps the time `cp -a` gave it. */
async function removeKeepingParentTime(dest: string): Promise<void> {
  const parent = await lstat(dirname(dest)).catch(() => undefined);
  await rm(dest, { recursive: true, force: true });
  if (parent) await utimes(dirname(dest), parent.atime, parent.mtime);
}

function destinationOf(inFs: string, wanted: string[], to: string): string | undefined {
  for (const w of wanted) {
    if (w === '/') return join(to, inFs);
    if (inFs === w || inFs.startsWith(`${w}/`)) return join(to, basename(w), inFs.slice(w.length));
  }
  return undefined;
}

function mountPathsToFs(text: string, root: string): string {
  return text.split(root).join('');
}
