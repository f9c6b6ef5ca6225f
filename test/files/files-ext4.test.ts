import assert from 'node:assert/strict';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { openBackend } from '../../src/repository/backend/open.ts';
import { packObjectName } from '../../src/repository/format.ts';
import { Repository } from '../../src/repository/repository.ts';
import { tempDir } from '../support/disk-images.ts';
import {
  fileSystemTestsSkipReason,
  makeExt4,
  makePartitionedDisk,
  makeSourceTree,
  MiB,
  offsetOf,
  readTree,
  type TreeEntry,
} from '../support/file-systems.ts';
import { goldsnap, goldsnapJson, TEST_PASSPHRASE } from '../support/goldsnap-cli.ts';

const skip = fileSystemTestsSkipReason(['mkfs.ext4', 'sfdisk', 'nbdfuse', 'fuse2fs', 'fusermount3']);
const CHUNK = 64 * 1024;

/** A repository holding one recovery point of a disk: `scheme` partition table, ext4 built from a known tree. */
async function backedUpDisk(t: any, scheme: 'gpt' | 'mbr') {
  const dir = await tempDir(t, 'goldsnap-files-');
  const tree = join(dir, 'tree');
  await makeSourceTree(tree);
  await makeExt4(join(dir, 'fs.img'), 40 * MiB, tree);
  const disk = join(dir, 'disk.img');
  await makePartitionedDisk(disk, 48 * MiB, scheme, join(dir, 'fs.img'));
  const repo = join(dir, 'repo');
  await goldsnapJson(['repo', 'init', '--repo', repo, '--chunk-size', '64K', '--pack-size', '4M']);
  const backup = await goldsnapJson(['repo', 'backup-image', disk, '--repo', repo, '--name', 'disk0']);
  return { dir, tree, disk, repo, point: backup.snapshot as string };
}

function asTree(entries: any[]): TreeEntry[] {
  return entries
    .filter((e) => !e.path.startsWith('/lost+found'))
    .map((e) => ({
      path: e.path,
      type: e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      mtime: Math.floor(Date.parse(e.mtime) / 1000),
      ...(e.type !== 'dir' ? { size: e.size } : {}),
      ...(e.target !== undefined ? { target: e.target } : {}),
    }));
}

test('ext4 on GPT: the listed tree and the fetched files equal the source, and only a little is read', {
  skip,
}, async (t) => {
  const { dir, tree, repo, point } = await backedUpDisk(t, 'gpt');
  const parts = await goldsnapJson(['repo', 'files', 'partitions', point.slice(0, 8), '--repo', repo]);
  assert.equal(parts.disks[0].scheme, 'gpt');
  assert.deepEqual(
    parts.disks[0].partitions.map((p: any) => [p.number, p.fs, p.start, p.sizeBytes]),
    [[1, 'ext4', MiB, 40 * MiB]],
  );

  const source = await readTree(tree);
  const listed = await goldsnapJson(['repo', 'files', 'ls', point, '/', '--recursive', '--repo', repo]);
  assert.deepEqual(asTree(listed.entries), source);
  // Listing reads metadata only: far less than the 4 MiB file it lists.
  assert.ok(listed.repositoryBytesRead < 2 * MiB, `listing read ${listed.repositoryBytesRead} bytes`);

  const etc = await goldsnapJson(['repo', 'files', 'ls', point, 'etc', '--repo', repo]);
  assert.deepEqual(
    etc.entries.map((e: any) => e.path),
    ['/etc/fstab', '/etc/hostname', '/etc/hostname.link', '/etc/long.link', '/etc/ssh'],
  );
  const one = await goldsnapJson(['repo', 'files', 'ls', point, '/etc/hostname', '--repo', repo]);
  assert.deepEqual(
    one.entries.map((e: any) => [e.path, e.size]),
    [['/etc/hostname', 7]],
  );
  const found = await goldsnapJson(['repo', 'files', 'ls', point, '--name', '*.LINK', '--repo', repo]);
  assert.deepEqual(
    found.entries.map((e: any) => e.path),
    ['/etc/hostname.link', '/etc/long.link'],
  );
  const missing = await goldsnap(['repo', 'files', 'ls', point, '/nope', '--repo', repo]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /there is no \/nope/);

  const out = join(dir, 'out');
  const got = await goldsnapJson(['repo', 'files', 'get', point, '/etc', '/data', '--to', out, '--repo', repo]);
  assert.deepEqual(got.errors, []);
  assert.deepEqual(await readTree(out), source);
  assert.deepEqual(await readFile(join(out, 'data/big.bin')), await readFile(join(tree, 'data/big.bin')));
  assert.equal(
    await readFile(join(out, 'etc/ssh/sshd_config'), 'utf8'),
    await readFile(join(tree, 'etc/ssh/sshd_config'), 'utf8'),
  );

  // Fetching one small file reads neither the big file nor the disk.
  const small = await goldsnapJson([
    'repo',
    'files',
    'get',
    point,
    '/etc/hostname',
    '--to',
    join(dir, 'small'),
    '--repo',
    repo,
  ]);
  assert.equal(await readFile(join(dir, 'small/hostname'), 'utf8'), 'web-01\n');
  assert.ok(small.repositoryBytesRead < 2 * MiB, `fetching a 7-byte file read ${small.repositoryBytesRead} bytes`);
});

test('ext4 on MBR: a damaged chunk fails the file it holds, by name, and the other files still come back', {
  skip,
}, async (t) => {
  const { dir, tree, disk, repo, point } = await backedUpDisk(t, 'mbr');
  const parts = await goldsnapJson(['repo', 'files', 'partitions', point, '--repo', repo]);
  assert.equal(parts.disks[0].scheme, 'mbr');
  assert.deepEqual(
    parts.disks[0].partitions.map((p: any) => [p.number, p.fs]),
    [[1, 'ext4']],
  );
  assert.deepEqual(
    asTree((await goldsnapJson(['repo', 'files', 'ls', point, '-R', '--repo', repo])).entries),
    await readTree(tree),
  );

  // Damage the stored chunk that holds the middle of /data/big.bin.
  const big = await readFile(join(tree, 'data/big.bin'));
  const position = Math.floor((await offsetOf(disk, big.subarray(2 * MiB, 2 * MiB + 4096))) / CHUNK);
  const r = await Repository.open(openBackend(repo), TEST_PASSPHRASE);
  const { point: rp } = await r.resolveRecoveryPoint(point);
  const fidx = await r.loadFixedIndex(rp.disks[0].fixedIndex);
  const location = (await r.loadIndex()).get(fidx.idAt(position).toString('hex'))!;
  const pack = await open(join(repo, packObjectName(location.pack)), 'r+');
  await pack.write(Buffer.from([0xff ^ 0x5a]), 0, 1, location.offset + 40);
  await pack.close();

  const out = join(dir, 'out');
  const got = await goldsnap(['repo', 'files', 'get', point, '/etc', '/data', '--to', out, '--repo', repo]);
  assert.equal(got.code, 1, got.stderr);
  assert.match(got.stderr, /error: \/data\/big\.bin: Input\/output error/);
  assert.match(got.stderr, new RegExp(`chunk ${position} .*failed authentication`));
  assert.deepEqual(
    await readTree(out),
    (await readTree(tree)).filter((e) => e.path !== '/data/big.bin'),
  );
  assert.equal(await readFile(join(out, 'data/notes.txt'), 'utf8'), 'keep this\n');
});
