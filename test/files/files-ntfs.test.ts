import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../support/disk-images.ts';
import {
  damageChunkAt,
  fileSystemTestsSkipReason,
  makeNtfs,
  makePartitionedDisk,
  makeSourceTree,
  MiB,
  offsetOf,
  readTree,
} from '../support/file-systems.ts';
import { goldsnap, goldsnapJson, TEST_PASSPHRASE } from '../support/goldsnap-cli.ts';

const skip = fileSystemTestsSkipReason(['mkntfs', 'ntfs-3g', 'sfdisk', 'nbdfuse', 'fusermount3']);

/** NTFS keeps no POSIX owners or modes (ntfs-3g shows root and 0777): compare the rest. */
function shape(entries: { path: string; type: string; size?: number; mtime: number | string; target?: string }[]) {
  return entries
    .filter((e) => !e.path.startsWith('/$') && !e.path.startsWith('/System Volume Information'))
    .map((e) => ({
      path: e.path,
      type: e.type,
      mtime: typeof e.mtime === 'string' ? Math.floor(Date.parse(e.mtime) / 1000) : e.mtime,
      ...(e.type === 'file' ? { size: e.size } : {}),
      ...(e.target !== undefined ? { target: e.target } : {}),
    }));
}

test('NTFS on MBR: the listed tree and the fetched files equal the source; a damaged chunk fails only its file', {
  skip,
}, async (t) => {
  const dir = await tempDir(t, 'goldsnap-files-');
  const tree = join(dir, 'tree');
  await makeSourceTree(tree, false);
  await makeNtfs(join(dir, 'fs.img'), 40 * MiB, tree, join(dir, 'mnt'));
  const disk = join(dir, 'disk.img');
  await makePartitionedDisk(disk, 48 * MiB, 'mbr', join(dir, 'fs.img'), MiB, true);
  const repo = join(dir, 'repo');
  await goldsnapJson(['repo', 'init', '--repo', repo, '--chunk-size', '64K']);
  const { snapshot } = await goldsnapJson(['repo', 'backup-image', disk, '--repo', repo, '--name', 'windows']);

  const parts = await goldsnapJson(['repo', 'files', 'partitions', snapshot, '--repo', repo]);
  assert.deepEqual(
    parts.disks[0].partitions.map((p: any) => [p.number, p.fs, p.type]),
    [[1, 'ntfs', '0x07']],
  );
  const source = shape(await readTree(tree));
  const listed = await goldsnapJson(['repo', 'files', 'ls', snapshot, '/', '-R', '--repo', repo]);
  assert.deepEqual(shape(listed.entries), source);
  assert.ok(listed.repositoryBytesRead < 2 * MiB, `listing read ${listed.repositoryBytesRead} bytes`);

  const out = join(dir, 'out');
  const got = await goldsnapJson(['repo', 'files', 'get', snapshot, '/data', '/etc', '--to', out, '--repo', repo]);
  assert.deepEqual(got.errors, []);
  assert.deepEqual(shape(await readTree(out)), source);
  assert.deepEqual(await readFile(join(out, 'data/big.bin')), await readFile(join(tree, 'data/big.bin')));

  const big = await readFile(join(tree, 'data/big.bin'));
  const position = await damageChunkAt(
    repo,
    TEST_PASSPHRASE,
    snapshot,
    await offsetOf(disk, big.subarray(MiB, MiB + 4096)),
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
  assert.equal(damaged.code, 1, damaged.stderr);
  assert.match(damaged.stderr, /error: \/data\/big\.bin: /);
  assert.match(damaged.stderr, new RegExp(`cause: disk windows: chunk ${position} `));
  assert.deepEqual(
    shape(await readTree(join(dir, 'out2'))),
    source.filter((e) => e.path !== '/data/big.bin'),
  );
});
