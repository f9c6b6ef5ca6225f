import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const MiB = 1024 * 1024;

export async function tempDir(
  t: { after: (fn: () => Promise<void>) => void },
  prefix = 'goldsnap-test-',
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A deterministic pseudo-random generator (xorshift), so a failing test can be rerun alike. */
export function prng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/**
 * Writes a disk image like a real one: stretches of incompressible data, stretches of
 * compressible text, and zeros (never written, so the file is sparse there).
 */
export async function makeDiskImage(path: string, sizeBytes: number, seed = 1): Promise<void> {
  const rand = prng(seed);
  const fh = await open(path, 'w');
  await fh.truncate(sizeBytes);
  const extent = 1024 * 1024;
  for (let offset = 0; offset < sizeBytes; offset += extent) {
    const kind = rand();
    const length = Math.min(extent, sizeBytes - offset);
    if (kind < 0.3) continue;
    const data =
      kind < 0.65
        ? randomBytes(length)
        : Buffer.from(
            `line ${offset} of a log file, seed ${seed} ${'abcdefghij'.repeat(4)}\n`.repeat(Math.ceil(length / 60)),
          ).subarray(0, length);
    await fh.write(data, 0, length, offset);
  }
  await fh.close();
}

/** Overwrites the given ranges with new random bytes. */
export async function overwrite(path: string, ranges: { offset: number; length: number }[]): Promise<void> {
  const fh = await open(path, 'r+');
  for (const r of ranges) await fh.write(randomBytes(r.length), 0, r.length, r.offset);
  await fh.close();
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest('hex');
}
