import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { MiB, makeDiskImage, overwrite, sha256File } from '../support/disk-images.ts';
import { goldsnap, goldsnapJson } from '../support/goldsnap-cli.ts';
import { errorMessage } from '../../src/util/errors.ts';

const run = promisify(execFile);

/** A small tmpfs of its own, so that "the disk is full" is real and touches nothing else. */
async function smallFileSystem(t: any, sizeMiB: number): Promise<string | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'goldsnap-full-'));
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', mnt]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    t.skip(`cannot mount a tmpfs (needs root; CI runs as root): ${errorMessage(err).split('\n')[0]}`);
    return undefined;
  }
  t.after(async () => {
    await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
    await rm(dir, { recursive: true, force: true });
  });
  return mnt;
}

async function fillUp(path: string): Promise<void> {
  const fh = await open(path, 'w');
  const block = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) await fh.write(block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

test('a full disk: the failed backup cleans up after itself, and prune frees space with 0 bytes free', async (t) => {
  const mnt = await smallFileSystem(t, 40);
  if (!mnt) return;
  const work = await mkdtemp(join(tmpdir(), 'goldsnap-full-work-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const repo = join(mnt, 'repo');
  await goldsnapJson(['repo', 'init', '--repo', repo, '--pack-size', '1M']);
  const image = join(work, 'disk.img');
  await makeDiskImage(image, 12 * MiB, 40);
  await overwrite(image, [{ offset: 0, length: 12 * MiB }]);
  await goldsnapJson(['repo', 'backup-image', image, '--repo', repo, '--source', 'disk']);
  await overwrite(image, [{ offset: 0, length: 12 * MiB }]);
  const kept = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo, '--source', 'disk']);
  const keptHash = await sha256File(image);

  // 40 MiB of new data does not fit in what is left.
  const big = join(work, 'big.img');
  await makeDiskImage(big, 40 * MiB, 41);
  await overwrite(big, [{ offset: 0, length: 40 * MiB }]);
  const failed = await goldsnap(['repo', 'backup-image', big, '--repo', repo, '--source', 'big']);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /the disk holding .* is full: free space there/);
  assert.doesNotMatch(failed.stderr, /ENOSPC:/);
  const left = await filesUnder(repo);
  assert.deepEqual(
    left.filter((f) => f.endsWith('.tmp') || f.includes('/sessions/')),
    [],
    'no temp files, no session marker',
  );
  const check = await goldsnapJson(['repo', 'check', '--read-data', '--repo', repo]);
  assert.deepEqual([check.errors, check.warnings], [[], []]);

  // Now not one byte free; forget the older point, and prune must still free its data.
  await fillUp(join(mnt, 'filler'));
  assert.equal((await statfs(mnt)).bavail, 0);
  await goldsnapJson(['repo', 'forget', '--repo', repo, '--keep-last', '1']);
  const pruned = await goldsnap(['repo', 'prune', '--repo', repo, '--grace', '0', '--json']);
  assert.equal(pruned.code, 0, pruned.stderr);
  const report = JSON.parse(pruned.stdout);
  assert.ok(report.freedBytes >= 10 * MiB, `freed ${report.freedBytes} bytes`);
  assert.ok((await statfs(mnt)).bavail * (await statfs(mnt)).bsize >= 10 * MiB);

  const after = await goldsnapJson(['repo', 'check', '--read-data', '--repo', repo]);
  assert.deepEqual([after.errors, after.warnings], [[], []]);
  const out = join(work, 'out.img');
  await goldsnapJson(['repo', 'restore-image', kept.snapshot, out, '--repo', repo]);
  assert.equal(await sha256File(out), keptHash);
});
