/**
 * The large-disk scenario's image: a sparse file (64 GiB by default) holding 8 GiB of data in
 * 32 MiB extents scattered over it, as a mostly empty data disk is. The data is a mix that
 * compresses the way a disk's content does, deterministic from a seed and made at memcpy/AES
 * speed: runs of 64 KiB–4 MiB, each of one kind:
 *   40% incompressible (an AES-CTR key stream: media, archives, encrypted files),
 *   35% text (slices of a seeded pool of log-like lines: compresses about 3x),
 *   15% binary-like (low-entropy bytes: compresses about 2x),
 *   10% zeros (freed blocks inside a filesystem).
 * Made once and kept in .bench/disks. Changes are scattered 64 KiB writes of new data of the
 * same mix, seeded, inside the data extents; they are applied to a working copy and undone by
 * copying the same ranges back from the base image, so no second copy of the disk is needed.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { GiB, log, MiB } from './measure.ts';
import { WORDS, xorshift } from './disk-fixture.ts';

export const EXTENT = 32 * MiB;
export const WRITE_SIZE = 64 * 1024;

export interface LargeDisk {
  path: string;
  sizeBytes: number;
  dataBytes: number;
  /** Offsets of the data extents, ascending. */
  extents: number[];
}

export function ensureLargeDisk(dir: string, sizeBytes: number, dataBytes: number, seed = 0x51a7e): LargeDisk {
  const extentCount = Math.round(dataBytes / EXTENT);
  const slots = sizeBytes / EXTENT;
  if (!Number.isInteger(slots) || extentCount < 1 || extentCount > slots)
    throw new Error(`large disk: ${sizeBytes} bytes with ${dataBytes} of data does not fit 32 MiB extents`);
  const random = xorshift(seed);
  const order = Array.from({ length: slots }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = random() % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const extents = order
    .slice(0, extentCount)
    .sort((a, b) => a - b)
    .map((slot) => slot * EXTENT);
  const name = `large-${sizeBytes / GiB}g-${(extentCount * EXTENT) / GiB}g-${seed.toString(16)}`;
  const disk: LargeDisk = { path: join(dir, `${name}.img`), sizeBytes, dataBytes: extentCount * EXTENT, extents };
  const done = join(dir, `${name}.v1.done`);
  if (existsSync(done) && existsSync(disk.path)) return disk;
  mkdirSync(dir, { recursive: true });

  log(`making the large image: ${sizeBytes / GiB} GiB sparse, ${disk.dataBytes / GiB} GiB of data (once)`);
  rmSync(disk.path, { force: true });
  const fd = openSync(disk.path, 'w');
  try {
    ftruncateSync(fd, sizeBytes);
    const mix = new Mix(seed);
    const buf = Buffer.alloc(EXTENT);
    for (const offset of extents) {
      mix.fill(buf);
      writeAll(fd, buf, offset);
    }
  } finally {
    closeSync(fd);
  }
  writeFileSync(done, '');
  return disk;
}

export interface ChangeSet {
  /** Offsets of the 64 KiB writes, ascending, distinct. */
  offsets: number[];
  bytes: number;
}

/** `share` of the disk's data changed as scattered 64 KiB writes, chosen from `seed`. */
export function changeSet(disk: LargeDisk, share: number, seed: number): ChangeSet {
  const count = Math.max(1, Math.round((disk.dataBytes * share) / WRITE_SIZE));
  const perExtent = EXTENT / WRITE_SIZE;
  const random = xorshift(seed);
  const chosen = new Set<number>();
  while (chosen.size < count) {
    const extent = disk.extents[random() % disk.extents.length];
    chosen.add(extent + (random() % perExtent) * WRITE_SIZE);
  }
  const offsets = [...chosen].sort((a, b) => a - b);
  return { offsets, bytes: offsets.length * WRITE_SIZE };
}

/** Writes the change set's new data into `image` and the ranges (merged) to `rangesFile`. */
export function applyChanges(image: string, set: ChangeSet, seed: number, rangesFile: string): void {
  const mix = new Mix(seed);
  const buf = Buffer.alloc(WRITE_SIZE);
  const fd = openSync(image, 'r+');
  try {
    for (const offset of set.offsets) {
      mix.fill(buf, true);
      writeAll(fd, buf, offset);
    }
  } finally {
    closeSync(fd);
  }
  const ranges: Array<{ offset: number; length: number }> = [];
  for (const offset of set.offsets) {
    const last = ranges[ranges.length - 1];
    if (last && last.offset + last.length === offset) last.length += WRITE_SIZE;
    else ranges.push({ offset, length: WRITE_SIZE });
  }
  writeFileSync(rangesFile, JSON.stringify(ranges));
}

/** Puts back the base image's bytes where the change set wrote. */
export function undoChanges(image: string, base: string, set: ChangeSet): void {
  const from = openSync(base, 'r');
  const to = openSync(image, 'r+');
  const buf = Buffer.alloc(WRITE_SIZE);
  try {
    for (const offset of set.offsets) {
      if (readSync(from, buf, 0, WRITE_SIZE, offset) !== WRITE_SIZE) throw new Error('short read of the base image');
      writeAll(to, buf, offset);
    }
  } finally {
    closeSync(from);
    closeSync(to);
  }
}

/**
 * Reads the data extents once (not the holes: reading those would take longer than some backups)
 * and writes back what is dirty, so that each tool's full backup starts from the same warm cache.
 */
export function warmExtents(image: string, disk: LargeDisk): void {
  const fd = openSync(image, 'r');
  const buf = Buffer.alloc(EXTENT);
  try {
    for (const offset of disk.extents) readSync(fd, buf, 0, EXTENT, offset);
  } finally {
    closeSync(fd);
  }
  execFileSync('sync');
}

function writeAll(fd: number, buf: Buffer, position: number): void {
  for (let done = 0; done < buf.length; ) done += writeSync(fd, buf, done, buf.length - done, position + done);
}

/** The seeded generator of the data mix (see the top of this file). */
class Mix {
  private readonly random: () => number;
  private readonly stream: ReturnType<typeof createCipheriv>;
  private readonly textPool: Buffer;
  private readonly zeros = Buffer.alloc(4 * MiB);

  constructor(seed: number) {
    this.random = xorshift(seed ^ 0x9e3779b9);
    const key = createHash('sha256').update(`bench large disk ${seed}`).digest();
    this.stream = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    const lines: string[] = [];
    let size = 0;
    for (let n = 0; size < 4 * MiB; n++) {
      const words = Array.from({ length: 6 + (this.random() % 10) }, () => WORDS[this.random() % WORDS.length]);
      const line = `2026-11-24T${String(n % 24).padStart(2, '0')}:${String(this.random() % 60).padStart(2, '0')} pid=${this.random() % 65536} ${words.join(' ')} id=${this.random().toString(16)}\n`;
      lines.push(line);
      size += line.length;
    }
    this.textPool = Buffer.from(lines.join(''));
  }

  /** Fills `buf` with runs of the mix; `dataOnly` leaves out the zero runs (a write of new data). */
  fill(buf: Buffer, dataOnly = false): void {
    for (let at = 0; at < buf.length; ) {
      const length = Math.min(buf.length - at, (1 + (this.random() % 64)) * WRITE_SIZE);
      const roll = this.random() % 100;
      const kind = roll < 40 ? 'random' : roll < 75 ? 'text' : roll < 90 || dataOnly ? 'binary' : 'zero';
      this.run(kind, buf.subarray(at, at + length));
      at += length;
    }
  }

  private run(kind: 'random' | 'text' | 'binary' | 'zero', out: Buffer): void {
    if (kind === 'zero') {
      for (let at = 0; at < out.length; at += this.zeros.length)
        this.zeros.copy(out, at, 0, Math.min(this.zeros.length, out.length - at));
      return;
    }
    if (kind === 'random' || kind === 'binary') {
      for (let at = 0; at < out.length; at += this.zeros.length) {
        const n = Math.min(this.zeros.length, out.length - at);
        this.stream.update(this.zeros.subarray(0, n)).copy(out, at);
      }
      if (kind === 'binary') for (let i = 0; i < out.length; i++) out[i] &= out[i] & 0x80 ? 0x0f : 0;
      return;
    }
    for (let at = 0; at < out.length; ) {
      const n = Math.min(out.length - at, 256 + (this.random() % 3840));
      const from = this.random() % (this.textPool.length - n);
      this.textPool.copy(out, at, from, from + n);
      at += n;
    }
  }
}
