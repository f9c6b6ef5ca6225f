import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readSync, closeSync, readFileSync, rmSync, writeFileSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The benchmark's disks: a 2 GiB ext4 image holding a real Debian tree (debootstrap), and a copy
 * in which about 2% of the image changed the way a running VM changes it: new files written
 * through the filesystem (data blocks, inodes, bitmaps, directory blocks). Built once and kept under .bench/ (they take minutes to make).
 */
export const IMAGE_SIZE = 2 * 1024 ** 3;
/** The granularity at which a cloud reports changed blocks (Azure page ranges are coarser in practice). */
export const CHANGE_GRANULARITY = 64 * 1024;

const PACKAGES = ['restic', 'debootstrap', 'e2fsprogs', 'time'];
const TREE_PACKAGES = 'python3,perl,git,less,vim-tiny,openssh-client,ca-certificates,curl';

export interface DiskFixture {
  base: string;
  changed: string;
  /** Byte ranges that differ between base and changed, as a cloud's changed-block API reports them. */
  rangesFile: string;
  changedBytes: number;
}

export function ensureTools(log: (line: string) => void): void {
  const missing = ['restic', 'debootstrap', 'mkfs.ext4', 'debugfs'].filter((tool) => !onPath(tool));
  if (!existsSync('/usr/bin/time')) missing.push('time');
  if (missing.length === 0) return;
  log(`installing ${PACKAGES.join(' ')} with apt-get (missing: ${missing.join(', ')})`);
  if (process.getuid?.() !== 0) throw new Error(`missing ${missing.join(', ')}: run as root, or: sudo apt-get install ${PACKAGES.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', ...PACKAGES], { stdio: 'inherit', env });
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(':').concat('/usr/sbin', '/sbin').some((dir) => existsSync(join(dir, tool)));
}

export function ensureDiskFixture(dir: string, log: (line: string) => void): DiskFixture {
  mkdirSync(dir, { recursive: true });
  const fixture: DiskFixture = { base: join(dir, 'base.img'), changed: join(dir, 'changed.img'), rangesFile: join(dir, 'changed-ranges.json'), changedBytes: 0 };
  const done = join(dir, 'fixture.done');
  if (existsSync(done)) return { ...fixture, changedBytes: Number(readFileSync(done, 'utf8')) };

  const rootfs = join(dir, 'rootfs');
  if (!existsSync(join(rootfs, '.goldsnap-complete'))) {
    rmSync(rootfs, { recursive: true, force: true });
    log(`debootstrap bookworm into ${rootfs} (a few minutes, once)`);
    execFileSync('debootstrap', ['--variant=minbase', `--include=${TREE_PACKAGES}`, 'bookworm', rootfs, mirror()], { stdio: ['ignore', 'ignore', 'inherit'] });
    writeFileSync(join(rootfs, '.goldsnap-complete'), '');
  }

  log('making the 2 GiB ext4 base image');
  rmSync(fixture.base, { force: true });
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', rootfs, '-E', 'root_owner=0:0', fixture.base, String(IMAGE_SIZE / 1024) + 'k'], { stdio: 'inherit' });

  log('making the changed copy: new files written through ext4, as a running VM would');
  execFileSync('cp', ['--sparse=always', fixture.base, fixture.changed]);
  changeFilesystem(fixture.changed, rootfs);

  const ranges = diffImages(fixture.base, fixture.changed);
  writeFileSync(fixture.rangesFile, JSON.stringify(ranges));
  const changedBytes = ranges.reduce((sum, r) => sum + r.length, 0);
  writeFileSync(done, String(changedBytes));
  return { ...fixture, changedBytes };
}

/** The Debian mirror apt already uses here, so debootstrap goes where the network allows. */
function mirror(): string {
  try {
    const sources = readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8');
    const uri = /URIs:\s*(\S+)/.exec(sources)?.[1];
    if (uri) return uri;
  } catch { /* fall through */ }
  return 'http://deb.debian.org/debian';
}

/**
 * Writes about 40 MiB (2% of the image) with debugfs, without mounting: a new directory of copied
 * binaries and libraries, so ext4 also updates its inodes, bitmaps and directory blocks.
 */
function changeFilesystem(image: string, rootfs: string): void {
  const sources = [join(rootfs, 'usr/bin'), join(rootfs, 'usr/lib/x86_64-linux-gnu')];
  const commands = ['mkdir /var/lib/goldsnap-bench'];
  let bytes = 0;
  const budget = 40 * 1024 ** 2;
  for (const sourceDir of sources) {
    for (const name of readdirSync(sourceDir).sort()) {
      const path = join(sourceDir, name);
      const st = statSync(path, { throwIfNoEntry: false });
      if (!st?.isFile() || st.size < 64 * 1024) continue;
      commands.push(`write ${path} /var/lib/goldsnap-bench/${name}`);
      bytes += st.size;
      if (bytes > budget) break;
    }
    if (bytes > budget) break;
  }
  const script = join(rootfs, '..', 'debugfs-commands.txt');
  writeFileSync(script, commands.join('\n') + '\n');
  execFileSync('debugfs', ['-w', '-f', script, image], { stdio: ['ignore', 'ignore', 'ignore'] });
}

/** Compares two images in CHANGE_GRANULARITY blocks and returns the differing ones, merged. */
export function diffImages(a: string, b: string): Array<{ offset: number; length: number }> {
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  const step = 16 * 1024 ** 2;
  const ba = Buffer.alloc(step);
  const bb = Buffer.alloc(step);
  const ranges: Array<{ offset: number; length: number }> = [];
  try {
    for (let offset = 0; offset < IMAGE_SIZE; offset += step) {
      readFully(fa, ba, offset);
      readFully(fb, bb, offset);
      for (let at = 0; at < step; at += CHANGE_GRANULARITY) {
        if (ba.compare(bb, at, at + CHANGE_GRANULARITY, at, at + CHANGE_GRANULARITY) === 0) continue;
        const last = ranges[ranges.length - 1];
        if (last && last.offset + last.length === offset + at) last.length += CHANGE_GRANULARITY;
        else ranges.push({ offset: offset + at, length: CHANGE_GRANULARITY });
      }
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
  return ranges;
}

function readFully(fd: number, buffer: Buffer, position: number): void {
  let done = 0;
  while (done < buffer.length) {
    const n = readSync(fd, buffer, done, buffer.length - done, position + done);
    if (n === 0) { buffer.fill(0, done); return; }
    done += n;
  }
}
