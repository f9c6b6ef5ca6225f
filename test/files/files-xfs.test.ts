import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../support/disk-images.ts';
import {
  damageChunkAt,
  fileSystemTestsSkipReason,
  makePartitionedDisk,
  makeSourceTree,
  makeXfs,
  MiB,
  offsetOf,
  readTree,
} from '../support/file-systems.ts';
import { goldsnap, goldsnapJson, TEST_PASSPHRASE } from '../support/goldsnap-cli.ts';

const skip = fileSystemTestsSkipReason(['mkfs.xfs', 'xfs_db', 'sfdisk', 'nbdfuse', 'fusermount3']);

/** mkfs.xfs -p does not keep times: compare everything else with the source. */
function timeless(entries: any[]) {
  return entries.map((e) => ({
    path: e.path,
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    ...(e.type !== 'dir' ? { size: e.size } : {}),
    ...(e.target !== undefined ? { target: e.target } : {}),
  }));
}

test('XFS on GPT: listed tree and fetched files equal the source; a damaged chunk fails only its file', {
  skip,
}, async (t) => {
  const dir = await tempDir(t, 'goldsnap-files-');
  const tree = join(dir, 'tree');
  await makeSourceTree(tree);
  // 300 MiB is the smallest XFS that mkfs.xfs makes.
  await makeXfs(join(dir, 'fs.img'), 300 * MiB, tree);
  const disk = join(dir, 'disk.img');
  await makePartitionedDisk(disk, 304 * MiB, 'gpt', join(dir, 'fs.img'));
  const repo = join(dir, 'repo');
  await goldsnapJson(['repo', 'init', '--repo', repo, '--chunk-size', '64K']);
  const { snapshot } = await goldsnapJson(['repo', 'backup-image', disk, '--repo', repo, '--name', 'data']);

  const parts = await goldsnapJson(['repo', 'files', 'partitions', snapshot, '--repo', repo]);
  assert.deepEqual(
    parts.disks[0].partitions.map((p: any) => [p.number, p.fs]),
    [[1, 'xfs']],
  );
  const source = await readTree(tree);
  const listed = await goldsnapJson(['repo', 'files', 'ls', snapshot, '/', '-R', '--repo', repo]);
  assert.deepEqual(timeless(listed.entries), timeless(source));
  assert.ok(listed.repositoryBytesRead < 4 * MiB, `listing read ${listed.repositoryBytesRead} bytes`);

  const out = join(dir, 'out');
  const got = await goldsnapJson(['repo', 'files', 'get', snapshot, '/etc', '/data', '--to', out, '--repo', repo]);
  assert.deepEqual(got.errors, []);
  const fetched = await readTree(out);
  assert.deepEqual(timeless(fetched), timeless(source));
  // Times are those the file system holds.
  assert.deepEqual(
    fetched.map((e) => [e.path, e.mtime]),
    listed.entries.map((e: any) => [e.path, Math.floor(Date.parse(e.mtime) / 1000)]),
  );
  assert.deepEqual(await readFile(join(out, 'data/big.bin')), await readFile(join(tree, 'data/big.bin')));

  const big = await readFile(join(tree, 'data/big.bin'));
  const position = await damageChunkAt(
    repo,
    TEST_PASSPHRASE,
    snapshot,
    await offsetOf(disk, big.subarray(3 * MiB, 3 * MiB + 4096)),
  );
  const damaged = await goldsnap([
    'repo',
    'files',
    'get',
    snapshot,
    '/data',
    '/etc',
    '--to',
    join(dir, 'out2'),
    '--repo',
    repo,
  ]);
  assert.equal(damaged.code, 1);
  assert.match(
    damaged.stderr,
    new RegExp(`error: /data/big\\.bin: disk data: chunk ${position} .*failed authentication`),
  );
  assert.deepEqual(
    (await readTree(join(dir, 'out2'))).map((e) => e.path),
    source.map((e) => e.path).filter((p) => p !== '/data/big.bin'),
  );
});
