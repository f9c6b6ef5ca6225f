import assert from 'node:assert/strict';
import { chmod, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { MiB, makeDiskImage, overwrite, sha256File, tempDir } from '../support/disk-images.ts';
import { goldsnap, goldsnapJson, TEST_PASSPHRASE } from '../support/goldsnap-cli.ts';

async function newRepo(t: any, packSize = '1M') {
  const dir = await tempDir(t);
  const repo = join(dir, 'repo');
  await goldsnapJson(['repo', 'init', '--repo', repo, '--pack-size', packSize]);
  return { dir, repo };
}

async function packSizes(repo: string): Promise<number[]> {
  const out: number[] = [];
  for (const sub of await readdir(join(repo, 'data'))) {
    for (const f of await readdir(join(repo, 'data', sub))) out.push((await stat(join(repo, 'data', sub, f))).size);
  }
  return out;
}

test('--parent of another disk or another source is refused, not silently used', async (t) => {
  const { dir, repo } = await newRepo(t);
  const small = join(dir, 'small.img');
  const big = join(dir, 'big.img');
  await makeDiskImage(small, 2 * MiB, 1);
  await makeDiskImage(big, 8 * MiB, 2);
  const other = await goldsnapJson(['repo', 'backup-image', small, '--repo', repo, '--name', 'other']);
  const ranges = join(dir, 'ranges.json');
  await writeFile(ranges, JSON.stringify([{ offset: 0, length: 4096 }]));

  const byName = await goldsnap([
    'repo',
    'backup-image',
    big,
    '--repo',
    repo,
    '--name',
    'disk',
    '--parent',
    other.snapshot,
    '--changed',
    ranges,
  ]);
  assert.equal(byName.code, 1);
  assert.match(byName.stderr, /has no disk named disk \(it has other\).*--name/);
  const bySource = await goldsnap([
    'repo',
    'backup-image',
    big,
    '--repo',
    repo,
    '--name',
    'other',
    '--parent',
    other.snapshot,
    '--changed',
    ranges,
  ]);
  assert.equal(bySource.code, 1);
  assert.match(bySource.stderr, /is of source .*small\.img, but this backup is of .*big\.img.*--source/);
  assert.equal((await goldsnapJson(['repo', 'snapshots', '--repo', repo])).length, 1, 'no recovery point was made');

  // The same disk under the same source and name continues its chain, and restores exactly.
  const fullBig = await goldsnapJson(['repo', 'backup-image', big, '--repo', repo, '--name', 'disk']);
  await overwrite(big, [{ offset: 0, length: 4096 }]);
  const incr = await goldsnapJson([
    'repo',
    'backup-image',
    big,
    '--repo',
    repo,
    '--name',
    'disk',
    '--parent',
    fullBig.snapshot,
    '--changed',
    ranges,
  ]);
  const out = join(dir, 'out.img');
  await goldsnapJson(['repo', 'restore-image', incr.snapshot, out, '--repo', repo]);
  assert.equal(await sha256File(out), await sha256File(big));
});

test('restore refuses to overwrite a file without --force, and makes images only the owner can read', async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 3 * MiB, 3);
  const b = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  const target = join(dir, 'precious.img');
  await writeFile(target, 'my other disk');
  const refused = await goldsnap(['repo', 'restore-image', b.snapshot, target, '--repo', repo]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /precious\.img already exists: choose another target, or give --force/);
  assert.equal((await stat(target)).size, 'my other disk'.length, 'the existing file is untouched');

  await goldsnapJson(['repo', 'restore-image', b.snapshot, target, '--repo', repo, '--force']);
  assert.equal(await sha256File(target), await sha256File(image));
  assert.equal((await stat(target)).mode & 0o777, 0o600);
  const fresh = join(dir, 'fresh.img');
  await goldsnapJson(['repo', 'restore-image', b.snapshot, fresh, '--repo', repo]);
  assert.equal((await stat(fresh)).mode & 0o777, 0o600);
});

test('a world-readable passphrase file gets a warning; a private one does not', async (t) => {
  const { dir, repo } = await newRepo(t);
  const file = join(dir, 'pass');
  await writeFile(file, `${TEST_PASSPHRASE}\n`);
  await chmod(file, 0o644);
  const loose = await goldsnap(['repo', 'snapshots', '--repo', repo, '--password-file', file], {
    GOLDSNAP_PASSWORD: undefined,
  });
  assert.equal(loose.code, 0, loose.stderr);
  assert.match(loose.stderr, /warning: the passphrase file .*pass can be read by every user .*chmod 600/);
  await chmod(file, 0o600);
  const tight = await goldsnap(['repo', 'snapshots', '--repo', repo, '--password-file', file], {
    GOLDSNAP_PASSWORD: undefined,
  });
  assert.equal(tight.code, 0, tight.stderr);
  assert.doesNotMatch(tight.stderr, /warning/);
});

test('a backup with many uploads in flight writes no empty header-only packs', async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 48 * MiB, 9);
  await overwrite(image, [{ offset: 0, length: 48 * MiB }]);
  const b = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo, '--workers', '2']);
  const sizes = await packSizes(repo);
  assert.equal(
    sizes.filter((s) => s < 1000).length,
    0,
    `packs of ${sizes.filter((s) => s < 1000).join(', ')} bytes hold no chunk`,
  );
  assert.ok(
    sizes.length <= b.stats.newChunks,
    `${sizes.length} packs for ${b.stats.newChunks} chunks of 1 MiB in 1 MiB packs`,
  );
});

test('forget --prune --grace frees the space at once', async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 4 * MiB, 4);
  await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  await overwrite(image, [{ offset: 0, length: 4 * MiB }]);
  const keep = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  const r = await goldsnap(['repo', 'forget', '--repo', repo, '--keep-last', '1', '--prune', '--grace', '0']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /removed [1-9]\d* packs/);
  const check = await goldsnapJson(['repo', 'check', '--read-data', '--repo', repo]);
  assert.deepEqual([check.errors, check.warnings], [[], []]);
  const out = join(dir, 'out.img');
  await goldsnapJson(['repo', 'restore-image', keep.snapshot, out, '--repo', repo]);
  assert.equal(await sha256File(out), await sha256File(image));
});

test('file system errors are sentences, not errno text', async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, MiB, 5);
  const ranges = join(dir, 'ranges.json');
  await writeFile(ranges, '[]');
  const fileAsRepo = await goldsnap(['repo', 'snapshots', '--repo', ranges]);
  assert.equal(fileAsRepo.code, 1);
  assert.match(fileAsRepo.stderr, /there is no goldsnap repository at .*ranges\.json/);
  const full = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  const noRanges = await goldsnap([
    'repo',
    'backup-image',
    image,
    '--repo',
    repo,
    '--parent',
    full.snapshot,
    '--changed',
    join(dir, 'nowhere.json'),
  ]);
  assert.match(noRanges.stderr, /cannot read the changed-ranges file: .*nowhere\.json does not exist/);
  const initOnFile = await goldsnap(['repo', 'init', '--repo', join(ranges, 'sub')]);
  assert.equal(initOnFile.code, 1);
  for (const r of [fileAsRepo, noRanges, initOnFile]) assert.doesNotMatch(r.stderr, /\bE[A-Z]{3,}:/);
});
