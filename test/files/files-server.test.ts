import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../support/disk-images.ts';
import {
  fileSystemTestsSkipReason,
  makeExt4,
  makePartitionedDisk,
  makeSourceTree,
  MiB,
  readTree,
} from '../support/file-systems.ts';
import { ServerUnderTest } from '../support/goldsnap-server.ts';
import { backUpVmHoldingImage } from '../support/vm-holding-image.ts';

const skip = fileSystemTestsSkipReason(['mkfs.ext4', 'sfdisk', 'nbdfuse', 'fuse2fs', 'fusermount3', 'tar']);

test('files ls and get through the server, for a recovery point of a protected VM', { skip }, async (t) => {
  const dir = await tempDir(t, 'goldsnap-files-');
  const tree = join(dir, 'tree');
  await makeSourceTree(tree);
  await makeExt4(join(dir, 'fs.img'), 40 * MiB, tree);
  const image = join(dir, 'disk.img');
  await makePartitionedDisk(image, 48 * MiB, 'gpt', join(dir, 'fs.img'));

  const server = await ServerUnderTest.create({ catalog: 'pglite' });
  t.after(() => server.dispose());
  await server.start();
  // The VM's OS disk holds the partitioned ext4 disk.
  const run = await backUpVmHoldingImage(server, 'files-1', image);
  assert.equal(run.step, 'succeeded', run.error);
  const point = run.recoveryPointId!;

  const parts = await server.cliJson(['files', 'partitions', point.slice(0, 10)]);
  assert.deepEqual(
    parts.disks.map((d: any) => [d.name, d.scheme, d.partitions.map((p: any) => p.fs)]),
    [['files-1-os', 'gpt', ['ext4']]],
  );
  const listed = await server.cliJson(['files', 'ls', point, '/etc']);
  assert.deepEqual(
    listed.entries.map((e: any) => [e.path, e.type]),
    [
      ['/etc/fstab', 'file'],
      ['/etc/hostname', 'file'],
      ['/etc/hostname.link', 'symlink'],
      ['/etc/long.link', 'symlink'],
      ['/etc/ssh', 'dir'],
    ],
  );

  const out = join(dir, 'out');
  const got = await server.cliJson(['files', 'get', point, '/etc', '/data/notes.txt', '--to', out]);
  assert.deepEqual(got.errors, []);
  const source = await readTree(tree);
  assert.deepEqual(
    await readTree(out),
    [
      ...source.filter((e) => e.path === '/data/notes.txt').map((e) => ({ ...e, path: '/notes.txt' })),
      ...source.filter((e) => e.path.startsWith('/etc')),
    ].sort((a, b) => (a.path < b.path ? -1 : 1)),
  );

  const search = await server.api('GET', `/api/recovery-points/${point}/files?name=${encodeURIComponent('n*.txt')}`);
  assert.deepEqual(
    search.body.entries.map((e: any) => e.path),
    ['/data/notes.txt'],
  );

  // The API says what is wrong: an unknown path is a 404, a viewer may list but not download.
  const missing = await server.api('GET', `/api/recovery-points/${point}/files?path=/nope`);
  assert.equal(missing.status, 404);
  const noPoint = await server.api('GET', '/api/recovery-points/abcdef12/files');
  assert.equal(noPoint.status, 404);
  const badDisk = await server.api('GET', `/api/recovery-points/${point}/files?disk=other`);
  assert.equal(badDisk.status, 400);
  assert.match(badDisk.body.error, /has no disk named other; it has files-1-os/);
});
