import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  closeSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
  statSync,
  readdirSync,
} from 'node:fs';
import { join } from 'node:path';

/**
 * The benchmark's disks: a 2 GiB ext4 image holding a real Debian tree (debootstrap), and a copy
 * in which about 2% of the image changed the way a running VM changes it (see changeFilesystem).
 * Built once and kept under .bench/ (they take minutes to make).
 */
export const IMAGE_SIZE = 2 * 1024 ** 3;
/** The granularity at which a cloud reports changed blocks (Azure page ranges are coarser in practice). */
export const CHANGE_GRANULARITY = 64 * 1024;

const PACKAGES = ['restic', 'borgbackup', 'debootstrap', 'e2fsprogs', 'time'];
const TREE_PACKAGES = 'python3,perl,git,less,vim-tiny,openssh-client,ca-certificates,curl';

export interface DiskFixture {
  base: string;
  changed: string;
  /** Byte ranges that differ between base and changed, as a cloud's changed-block API reports them. */
  rangesFile: string;
  changedBytes: number;
}

export function ensureTools(log: (line: string) => void): void {
  const missing = ['restic', 'borg', 'debootstrap', 'mkfs.ext4', 'debugfs'].filter((tool) => !onPath(tool));
  if (!existsSync('/usr/bin/time')) missing.push('time');
  if (missing.length === 0) return;
  log(`installing ${PACKAGES.join(' ')} with apt-get (missing: ${missing.join(', ')})`);
  if (process.getuid?.() !== 0)
    throw new Error(`missing ${missing.join(', ')}: run as root, or: sudo apt-get install ${PACKAGES.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', ...PACKAGES], { stdio: 'inherit', env });
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '')
    .split(':')
    .concat('/usr/sbin', '/sbin')
    .some((dir) => existsSync(join(dir, tool)));
}

export function ensureDiskFixture(dir: string, log: (line: string) => void): DiskFixture {
  mkdirSync(dir, { recursive: true });
  const fixture: DiskFixture = {
    base: join(dir, 'base.img'),
    changed: join(dir, 'changed.img'),
    rangesFile: join(dir, 'changed-ranges.json'),
    changedBytes: 0,
  };
  // Bump when the way the disks are made changes, so they are made anew.
  const done = join(dir, 'fixture-v3.done');
  if (existsSync(done)) return { ...fixture, changedBytes: Number(readFileSync(done, 'utf8')) };

  const rootfs = join(dir, 'rootfs');
  if (!existsSync(join(rootfs, '.goldsnap-complete'))) {
    rmSync(rootfs, { recursive: true, force: true });
    log(`debootstrap bookworm into ${rootfs} (a few minutes, once)`);
    execFileSync('debootstrap', ['--variant=minbase', `--include=${TREE_PACKAGES}`, 'bookworm', rootfs, mirror()], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    writeFileSync(join(rootfs, '.goldsnap-complete'), '');
  }

  log('making the 2 GiB ext4 base image');
  rmSync(fixture.base, { force: true });
  execFileSync(
    'mkfs.ext4',
    ['-q', '-F', '-d', rootfs, '-E', 'root_owner=0:0', fixture.base, `${String(IMAGE_SIZE / 1024)}k`],
    { stdio: 'inherit' },
  );

  log('making the changed copy: new logs and files, copied binaries, pages rewritten in place');
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
  } catch {
    /* fall through */
  }
  return 'http://deb.debian.org/debian';
}

/**
 * Changes about 2% of the image the ways a VM's day changes it, through ext4 with debugfs (no
 * mount needed): a new log of generated text (12 MiB), a new incompressible download (8 MiB), a
 * package-update-like copy of existing binaries (8 MiB, which content-defined chunking can dedup),
 * and database-like rewrites of scattered 4 KiB pages inside the largest existing files (5 MiB).
 */
function changeFilesystem(image: string, rootfs: string): void {
  const work = join(rootfs, '..', 'changes');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  const random = xorshift(0x60d5a9);
  writeFileSync(join(work, 'app.log'), generatedText(random, 12 * 1024 ** 2));
  writeFileSync(
    join(work, 'download.bin'),
    Buffer.from(Uint32Array.from({ length: 2 * 1024 ** 2 }, () => random()).buffer),
  );
  const commands = [
    'mkdir /var/log/app',
    `write ${join(work, 'app.log')} /var/log/app/app.log`,
    'mkdir /var/cache/app',
    `write ${join(work, 'download.bin')} /var/cache/app/download.bin`,
    'mkdir /opt/update',
  ];
  let copied = 0;
  for (const name of readdirSync(join(rootfs, 'usr/bin')).sort()) {
    const path = join(rootfs, 'usr/bin', name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st?.isFile() || st.size < 64 * 1024) continue;
    commands.push(`write ${path} /opt/update/${name}`);
    copied += st.size;
    if (copied > 8 * 1024 ** 2) break;
  }
  writeFileSync(join(work, 'debugfs-commands.txt'), `${commands.join('\n')}\n`);
  execFileSync('debugfs', ['-w', '-f', join(work, 'debugfs-commands.txt'), image], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });

  // Rewrite 4 KiB pages in place inside the three largest files, as a database does.
  const largest = [
    'usr/lib/x86_64-linux-gnu/libperl.so.5.36.0',
    'usr/lib/x86_64-linux-gnu/libcrypto.so.3',
    'usr/bin/python3.11',
  ];
  const blocks = largest.flatMap((file) =>
    execFileSync('debugfs', ['-R', `blocks /${file}`, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number),
  );
  const fd = openSync(image, 'r+');
  try {
    for (let i = 0; i < 1280 && blocks.length > 0; i++) {
      const block = blocks[random() % blocks.length];
      writeSync(fd, generatedText(random, 4096), 0, 4096, block * 4096);
    }
  } finally {
    closeSync(fd);
  }
  rmSync(work, { recursive: true, force: true });
}

/** A fast deterministic generator (xorshift32): the benches' data is the same for the same seed. */
export function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** The vocabulary of the benches' log-like text. */
export const WORDS =
  'request served user session cache miss hit upstream timeout retry connection pool query rows ms status ok error warn info debug GET POST /api/orders /api/users /health worker job queued done'.split(
    ' ',
  );

/** Log-like text: compressible as real logs are, but new content. */
function generatedText(random: () => number, bytes: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let n = 0; size < bytes; n++) {
    const words = Array.from({ length: 6 + (random() % 10) }, () => WORDS[random() % WORDS.length]);
    const line = `2026-11-24T${String(n % 24).padStart(2, '0')}:${String(random() % 60).padStart(2, '0')}:${String(random() % 60).padStart(2, '0')}.${random() % 1000}Z pid=${random() % 65536} ${words.join(' ')} id=${random().toString(16)}\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
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
    if (n === 0) {
      buffer.fill(0, done);
      return;
    }
    done += n;
  }
}
