import { execFile, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chown,
  lchown,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
export const MiB = 1024 * 1024;

/** Why file-system tests cannot run here, or undefined when they can. */
export function fileSystemTestsSkipReason(tools: string[]): string | undefined {
  if (process.getuid?.() !== 0)
    return 'file-level restore tests build file systems with owners and mount FUSE: run them as root (CI does)';
  if (!existsSync('/dev/fuse')) return '/dev/fuse is unavailable on this machine: FUSE tests cannot run';
  for (const tool of tools) {
    if (!['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(join(d, tool))))
      return `${tool} is not installed (.ci/run installs it)`;
  }
  return undefined;
}

export interface TreeEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  mtime: number;
  target?: string;
}

/**
 * A small tree like a real system's: nested folders, modes, owners, old times, a symlink, and one
 * large file of random bytes (`/data/big.bin`, 4 MiB) whose chunks a test can damage.
 */
export async function makeSourceTree(dir: string, owners = true): Promise<void> {
  const t = new Date('2024-05-06T07:08:09Z');
  await mkdir(join(dir, 'etc/ssh'), { recursive: true });
  await mkdir(join(dir, 'data/empty'), { recursive: true });
  await writeFile(join(dir, 'etc/hostname'), 'web-01\n');
  await writeFile(join(dir, 'etc/ssh/sshd_config'), 'PermitRootLogin no\n'.repeat(50), { mode: 0o600 });
  await writeFile(join(dir, 'etc/fstab'), '# <file system> <mount point>\n');
  await symlink('hostname', join(dir, 'etc/hostname.link'));
  // Too long to fit in the inode: the target is kept in a data block.
  await symlink(`/opt/${'long-folder-name/'.repeat(20)}target`, join(dir, 'etc/long.link'));
  await writeFile(join(dir, 'data/big.bin'), randomBytes(4 * MiB));
  await writeFile(join(dir, 'data/notes.txt'), 'keep this\n');
  await writeFile(join(dir, 'data/run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  if (owners) {
    await chown(join(dir, 'data'), 1000, 1000);
    await chown(join(dir, 'data/notes.txt'), 1000, 100);
    await lchown(join(dir, 'etc/hostname.link'), 0, 0);
  }
  for (const p of [
    'etc/hostname',
    'etc/fstab',
    'etc/ssh/sshd_config',
    'data/big.bin',
    'data/notes.txt',
    'data/run.sh',
    'etc/ssh',
    'data/empty',
    'etc',
    'data',
  ]) {
    await utimes(join(dir, p), t, t);
  }
  await lutimes(join(dir, 'etc/hostname.link'), t, t);
  await lutimes(join(dir, 'etc/long.link'), t, t);
}

/** The tree under `dir` as entries with paths from `/`, sorted; folders' sizes left out (file systems differ). */
export async function readTree(dir: string, rel = ''): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const path = `${rel}/${name}`;
    if (path === '/lost+found') continue;
    const s = await lstat(join(dir, path));
    const type = s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'symlink' : 'file';
    const entry: TreeEntry = {
      path,
      type,
      mode: s.mode & 0o7777,
      uid: s.uid,
      gid: s.gid,
      mtime: Math.floor(s.mtimeMs / 1000),
    };
    if (type !== 'dir') entry.size = s.size;
    if (type === 'symlink') entry.target = await readlink(join(dir, path));
    out.push(entry);
    if (type === 'dir') out.push(...(await readTree(dir, path)));
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

/** Builds an ext4 file system image of `sizeBytes` holding the tree (mkfs.ext4 -d). */
export async function makeExt4(image: string, sizeBytes: number, tree: string): Promise<void> {
  await truncate(image, sizeBytes);
  await exec('mkfs.ext4', ['-q', '-F', '-d', tree, image]);
}

/**
 * Builds an NTFS image (mkntfs) and copies the tree into it through ntfs-3g, kept in the
 * foreground (no_detach) so that its exit after the unmount means everything is written.
 */
export async function makeNtfs(image: string, sizeBytes: number, tree: string, mountDir: string): Promise<void> {
  await truncate(image, sizeBytes);
  await exec('mkntfs', ['-q', '-F', '-Q', image]);
  await mkdir(mountDir, { recursive: true });
  const driver = spawn('ntfs-3g', ['-o', 'no_detach', image, mountDir], { stdio: 'ignore' });
  const exited = new Promise((resolve) => driver.on('exit', resolve));
  while (!(await readFile('/proc/self/mounts', 'utf8')).split('\n').some((l) => l.split(' ')[1] === mountDir)) {
    if (driver.exitCode !== null) throw new Error(`ntfs-3g could not mount ${image}`);
    await sleep(20);
  }
  try {
    await exec('cp', ['-r', '--preserve=timestamps,links', `${tree}/.`, `${mountDir}/`]);
  } finally {
    await exec('fusermount3', ['-u', mountDir]);
    await exited;
  }
}

/** Builds an XFS image holding the tree (mkfs.xfs -p with a protofile; times are not kept by it). */
export async function makeXfs(image: string, sizeBytes: number, tree: string): Promise<void> {
  const lines = ['goldsnap-test', '0 0', 'd--755 0 0', ...(await protoLines(tree, '')), '$'];
  const proto = `${image}.proto`;
  await writeFile(proto, `${lines.join('\n')}\n`);
  await truncate(image, sizeBytes);
  await exec('mkfs.xfs', ['-q', '-f', '-p', proto, image]);
}

async function protoLines(dir: string, rel: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const path = join(dir, rel, name);
    const s = await lstat(path);
    const perms = `${s.mode & 0o4000 ? 'u' : '-'}${s.mode & 0o2000 ? 'g' : '-'}${(s.mode & 0o777).toString(8).padStart(3, '0')}`;
    if (s.isDirectory())
      out.push(`${name} d${perms} ${s.uid} ${s.gid}`, ...(await protoLines(dir, join(rel, name))), '$');
    else if (s.isSymbolicLink()) out.push(`${name} l${perms} ${s.uid} ${s.gid} ${await readlink(path)}`);
    else out.push(`${name} -${perms} ${s.uid} ${s.gid} ${path}`);
  }
  return out;
}

/** Flips a byte of the stored chunk that holds disk offset `diskOffset` of the point's first disk. */
export async function damageChunkAt(
  repoDir: string,
  passphrase: string,
  point: string,
  diskOffset: number,
): Promise<number> {
  const { openBackend } = await import('../../src/repository/backend/open.ts');
  const { packObjectName } = await import('../../src/repository/format.ts');
  const { Repository } = await import('../../src/repository/repository.ts');
  const r = await Repository.open(openBackend(repoDir), passphrase);
  const { point: rp } = await r.resolveRecoveryPoint(point);
  const fidx = await r.loadFixedIndex(rp.disks[0].fixedIndex);
  const position = Math.floor(diskOffset / fidx.chunkSize);
  const location = (await r.loadIndex()).get(fidx.idAt(position).toString('hex'))!;
  const pack = await open(join(repoDir, packObjectName(location.pack)), 'r+');
  try {
    const b = Buffer.alloc(1);
    await pack.read(b, 0, 1, location.offset + 40);
    b[0] ^= 0xff;
    await pack.write(b, 0, 1, location.offset + 40);
  } finally {
    await pack.close();
  }
  return position;
}

/** Writes a disk image with one partition (GPT or MBR, by sfdisk) holding the file system image. */
export async function makePartitionedDisk(
  disk: string,
  diskBytes: number,
  scheme: 'gpt' | 'mbr',
  fsImage: string,
  startBytes = MiB,
  windows = false,
): Promise<void> {
  const fsBytes = (await lstat(fsImage)).size;
  await truncate(disk, diskBytes);
  const layout = `label: ${scheme === 'gpt' ? 'gpt' : 'dos'}\nstart=${startBytes / 512}, size=${fsBytes / 512}, type=${scheme === 'gpt' ? (windows ? 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7' : 'linux') : windows ? '7' : '83'}\n`;
  await new Promise<void>((resolve, reject) => {
    const child = execFile('sfdisk', ['-q', disk], (err) => (err ? reject(err) : resolve()));
    child.stdin!.end(layout);
  });
  const src = await open(fsImage, 'r');
  const dst = await open(disk, 'r+');
  try {
    const buf = Buffer.alloc(MiB);
    for (let at = 0; at < fsBytes; at += MiB) {
      const { bytesRead } = await src.read(buf, 0, MiB, at);
      if (buf.subarray(0, bytesRead).some((b) => b !== 0)) await dst.write(buf, 0, bytesRead, startBytes + at);
    }
  } finally {
    await src.close();
    await dst.close();
  }
}

async function truncate(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(size);
  await fh.close();
}

/** Where in `image` the bytes of `needle` are (to find which chunk holds a file's data). */
export async function offsetOf(image: string, needle: Buffer): Promise<number> {
  const at = (await readFile(image)).indexOf(needle);
  if (at < 0) throw new Error('bytes not found in the image');
  return at;
}
