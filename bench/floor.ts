/**
 * The machine's floor for a full backup of an image: the least time the backup's own arithmetic
 * can take on this machine, measured in the same run as the backups.
 *
 * Method (deliberately simple):
 * 1. Cut the image into chunks of the repository's chunk size and keep the chunks that are not all
 *    zeros (zero chunks are recorded, not stored, so they cost the pipeline almost nothing).
 * 2. In this process, on one thread, time each primitive the pipeline applies, over those chunks,
 *    one primitive at a time: HMAC-SHA-256 of each chunk (its id), zstd level 3 of each chunk,
 *    AES-256-GCM of what is stored (the compressed chunk, or the chunk itself when zstd does not
 *    make it smaller), SHA-256 of the stored bytes (the pack's storage id). Each is timed three
 *    times; the median counts.
 * 3. floor = (sum of the four single-thread times) / cores: every core busy with nothing but
 *    those primitives, no reading, no writing, no bookkeeping.
 * Goldsnap's full backup is then reported as floor / its wall time: 100% would be the floor.
 * On a shared machine the cores are not all ours; the primitives are timed under the same load
 * as the backups, which is why they are measured in the same run.
 */
import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { constants, zstdCompressSync } from 'node:zlib';
import { median } from './measure.ts';

export interface Floor {
  chunkSize: number;
  cores: number;
  nonZeroChunks: number;
  nonZeroBytes: number;
  storedBytes: number;
  /** Single-thread throughput of each primitive, MiB/s of its input. */
  mibPerSecond: { hmacSha256: number; zstd3: number; aes256gcm: number; sha256: number };
  /** Single-thread seconds of each primitive over the image (medians of 3). */
  seconds: { hmacSha256: number; zstd3: number; aes256gcm: number; sha256: number };
  raw: Record<string, number[]>;
  floorSeconds: number;
}

export function measureFloor(image: string, chunkSize: number): Floor {
  const chunks = nonZeroChunks(image, chunkSize);
  const nonZeroBytes = chunks.reduce((s, c) => s + c.length, 0);
  const time = (fn: () => void) => {
    const started = process.hrtime.bigint();
    fn();
    return Number(process.hrtime.bigint() - started) / 1e9;
  };
  const key = randomBytes(32);
  let stored: Buffer[] = [];
  const primitives: Record<keyof Floor['seconds'], () => void> = {
    hmacSha256: () => {
      for (const c of chunks) createHmac('sha256', key).update(c).digest();
    },
    zstd3: () => {
      stored = chunks.map((c) => {
        const z = zstdCompressSync(c, { params: { [constants.ZSTD_c_compressionLevel]: 3 } });
        return z.length < c.length ? z : c;
      });
    },
    aes256gcm: () => {
      for (const s of stored) {
        const cipher = createCipheriv('aes-256-gcm', key, randomBytes(12));
        cipher.update(s);
        cipher.final();
        cipher.getAuthTag();
      }
    },
    sha256: () => {
      for (const s of stored) createHash('sha256').update(s).digest();
    },
  };
  const raw: Record<string, number[]> = {};
  const seconds = {} as Floor['seconds'];
  for (const [name, fn] of Object.entries(primitives) as Array<[keyof Floor['seconds'], () => void]>) {
    raw[name] = [time(fn), time(fn), time(fn)];
    seconds[name] = median(raw[name]);
  }
  const storedBytes = stored.reduce((s, b) => s + b.length, 0);
  const MiB = 1024 ** 2;
  const cores = availableParallelism();
  return {
    chunkSize,
    cores,
    nonZeroChunks: chunks.length,
    nonZeroBytes,
    storedBytes,
    mibPerSecond: {
      hmacSha256: nonZeroBytes / MiB / seconds.hmacSha256,
      zstd3: nonZeroBytes / MiB / seconds.zstd3,
      aes256gcm: storedBytes / MiB / seconds.aes256gcm,
      sha256: storedBytes / MiB / seconds.sha256,
    },
    seconds,
    raw,
    floorSeconds: (seconds.hmacSha256 + seconds.zstd3 + seconds.aes256gcm + seconds.sha256) / cores,
  };
}

function nonZeroChunks(image: string, chunkSize: number): Buffer[] {
  const fd = openSync(image, 'r');
  const chunks: Buffer[] = [];
  try {
    for (let offset = 0; ; offset += chunkSize) {
      const buf = Buffer.alloc(chunkSize);
      const n = readSync(fd, buf, 0, chunkSize, offset);
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      if (!isZero(chunk)) chunks.push(chunk);
      if (n < chunkSize) break;
    }
  } finally {
    closeSync(fd);
  }
  return chunks;
}

const zeros = Buffer.alloc(1024 ** 2);
function isZero(b: Buffer): boolean {
  for (let at = 0; at < b.length; at += zeros.length) {
    const end = Math.min(b.length, at + zeros.length);
    if (!b.subarray(at, end).equals(zeros.subarray(0, end - at))) return false;
  }
  return true;
}
