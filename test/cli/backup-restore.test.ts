import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, open, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { MiB, makeDiskImage, overwrite, sha256File, tempDir } from '../support/disk-images.ts';
import { goldsnap, goldsnapJson } from '../support/goldsnap-cli.ts';

async function newRepo(t: any, extra: string[] = []) {
  const dir = await tempDir(t);
  const repo = join(dir, 'repo');
  await goldsnapJson(['repo', 'init', '--repo', repo, '--pack-size', '4M', ...extra]);
  return { dir, repo };
}

test('a disk image round-trips bit for bit, zeros and an odd-sized tail included', async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 24 * MiB + 12345, 7);
  const backup = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo, '--name', 'disk0']);
  assert.equal(backup.sizeBytes, 24 * MiB + 12345);
  assert.ok(backup.stats.zeroChunks > 0, 'zero chunks are recognised');
  assert.equal(backup.stats.newChunks + backup.stats.zeroChunks <= 25, true);

  const restored = join(dir, 'restored.img');
  await goldsnapJson(['repo', 'restore-image', backup.snapshot.slice(0, 8), restored, '--repo', repo]);
  assert.equal(await sha256File(restored), await sha256File(image));
  assert.equal((await stat(restored)).size, 24 * MiB + 12345);

  const list = await goldsnapJson(['repo', 'snapshots', '--repo', repo]);
  assert.deepEqual(
    list.map((p: any) => p.id),
    [backup.snapshot],
  );
  const check = await goldsnapJson(['repo', 'check', '--read-data', '--repo', repo]);
  assert.deepEqual(check.errors, []);
});

test('an incremental backup reads only the changed ranges and restores the new content', async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 32 * MiB, 11);
  const full = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo, '--name', 'disk0']);
  // The image is sparse: its holes are not read (see the test on holes below).
  assert.equal(full.stats.readChunks, 32);
  assert.ok(full.stats.readBytes < 32 * MiB && full.stats.readBytes > 0);

  const changed = [
    { offset: 3 * MiB + 4096, length: 8192 },
    { offset: 20 * MiB - 512, length: 1024 },
  ];
  await overwrite(image, changed);
  const expected = await sha256File(image);
  // A trap: bytes outside the changed ranges are altered too, but the list does not say so. If the
  // backup read anything but the listed ranges' chunks, the restore would contain these bytes.
  await overwrite(image, [{ offset: 10 * MiB, length: 4096 }]);
  const rangesFile = join(dir, 'changed.json');
  await writeFile(rangesFile, JSON.stringify(changed));
  const incr = await goldsnapJson([
    'repo',
    'backup-image',
    image,
    '--repo',
    repo,
    '--name',
    'disk0',
    '--parent',
    full.snapshot,
    '--changed',
    rangesFile,
  ]);
  // The ranges touch chunks 3, 19 and 20.
  assert.equal(incr.stats.readChunks, 3);
  assert.equal(incr.stats.readBytes, 3 * MiB);

  const restored = join(dir, 'restored.img');
  await goldsnapJson(['repo', 'restore-image', incr.snapshot, restored, '--repo', repo]);
  assert.equal(await sha256File(restored), expected);
});

test('holes in a sparse image are not read, and it restores bit for bit', async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'sparse.img');
  const size = 256 * MiB;
  // 256 MiB of which 3 chunks hold data: a whole first chunk, 8 KiB across no boundary in the
  // middle, and the last bytes of the file; the rest was never written.
  const fh = await open(image, 'w');
  await fh.truncate(size);
  await fh.write(randomBytes(MiB), 0, MiB, 0);
  await fh.write(randomBytes(8192), 0, 8192, 128 * MiB + 4096);
  await fh.write(randomBytes(100), 0, 100, size - 100);
  await fh.close();

  const backup = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo, '--name', 'sparse']);
  assert.equal(backup.stats.readChunks, 256);
  assert.equal(backup.stats.readBytes, 3 * MiB, 'only the chunks that hold data are read');
  assert.equal(backup.stats.zeroChunks, 253);
  assert.equal(backup.stats.newChunks, 3);

  const restored = join(dir, 'restored.img');
  await goldsnapJson(['repo', 'restore-image', backup.snapshot, restored, '--repo', repo]);
  assert.equal((await stat(restored)).size, size);
  assert.equal(await sha256File(restored), await sha256File(image));

  // The same content, fully allocated (zeros written out): every byte is read, and the chunks are
  // the same ones, so nothing new is stored.
  const dense = join(dir, 'dense.img');
  await copyFileDense(image, dense);
  const again = await goldsnapJson(['repo', 'backup-image', dense, '--repo', repo, '--name', 'sparse']);
  assert.equal(again.stats.readBytes, size);
  assert.equal(again.stats.zeroChunks, 253);
  assert.equal(again.stats.newChunks, 0);
});

/** Copies a file writing every byte, holes as zeros, so the copy has no holes. */
async function copyFileDense(from: string, to: string): Promise<void> {
  const src = await open(from, 'r');
  const dst = await open(to, 'w');
  const buf = Buffer.alloc(8 * MiB);
  for (let offset = 0; ; offset += buf.length) {
    const { bytesRead } = await src.read(buf, 0, buf.length, offset);
    if (bytesRead === 0) break;
    await dst.write(buf, 0, bytesRead, offset);
  }
  await src.close();
  await dst.close();
}

test('identical data in two images is stored once', async (t) => {
  const { dir, repo } = await newRepo(t);
  const a = join(dir, 'a.img');
  const b = join(dir, 'b.img');
  await makeDiskImage(a, 16 * MiB, 3);
  await copyFile(a, b);
  await overwrite(b, [{ offset: 5 * MiB, length: 100 }]);
  const first = await goldsnapJson(['repo', 'backup-image', a, '--repo', repo]);
  const second = await goldsnapJson(['repo', 'backup-image', b, '--repo', repo]);
  assert.ok(first.stats.newChunks > 5);
  assert.equal(second.stats.newChunks, 1, 'only the one changed chunk is new');
  for (const [img, snap] of [
    [a, first.snapshot],
    [b, second.snapshot],
  ]) {
    const out = join(dir, `${snap}.img`);
    await goldsnapJson(['repo', 'restore-image', snap, out, '--repo', repo]);
    assert.equal(await sha256File(out), await sha256File(img));
  }
});

test('a wrong passphrase is refused with a clear error', async (t) => {
  const { dir, repo } = await newRepo(t);
  const r = await goldsnap(['repo', 'snapshots', '--repo', repo], { GOLDSNAP_PASSWORD: 'not the passphrase' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /wrong passphrase/);
  const missing = await goldsnap(['repo', 'snapshots', '--repo', join(dir, 'nowhere')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no goldsnap repository at .*repo init/);
});

test('a second key slot opens the repository; the last slot cannot be removed', async (t) => {
  const { repo } = await newRepo(t);
  const added = await goldsnapJson(['repo', 'key', 'add', '--repo', repo], {
    GOLDSNAP_NEW_PASSWORD: 'second passphrase',
  });
  const slots = await goldsnapJson(['repo', 'key', 'list', '--repo', repo], { GOLDSNAP_PASSWORD: 'second passphrase' });
  assert.equal(slots.length, 2);
  const first = slots.find((s: any) => s.id !== added.id).id;
  await goldsnapJson(['repo', 'key', 'remove', first, '--repo', repo], { GOLDSNAP_PASSWORD: 'second passphrase' });
  const old = await goldsnap(['repo', 'snapshots', '--repo', repo]);
  assert.match(old.stderr, /wrong passphrase/);
  const last = await goldsnap(['repo', 'key', 'remove', added.id, '--repo', repo], {
    GOLDSNAP_PASSWORD: 'second passphrase',
  });
  assert.match(last.stderr, /last key slot/);
});

test('a corrupted pack is found by check --read-data and refused by restore', async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 8 * MiB, 5);
  const backup = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  const packDir = join(repo, 'data');
  const sub = (await readdir(packDir))[0];
  const pack = (await readdir(join(packDir, sub)))[0];
  // Flip one byte in the middle of the first chunk's ciphertext.
  const { open } = await import('node:fs/promises');
  const fh = await open(join(packDir, sub, pack), 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, 1000);
  b[0] ^= 0xff;
  await fh.write(b, 0, 1, 1000);
  await fh.close();

  const quick = await goldsnap(['repo', 'check', '--repo', repo]);
  assert.equal(quick.code, 0, 'the structure is intact: headers and sizes still match');
  const deep = await goldsnap(['repo', 'check', '--read-data', '--repo', repo]);
  assert.equal(deep.code, 1);
  assert.match(deep.stdout, new RegExp(`error: .*pack ${pack}`));
  assert.match(deep.stdout, /failed authentication|does not hash/);

  const target = join(dir, 'restored.img');
  const restore = await goldsnap(['repo', 'restore-image', backup.snapshot, target, '--repo', repo]);
  assert.equal(restore.code, 1);
  assert.match(restore.stderr, new RegExp(`chunk [0-9a-f]{64} in pack ${pack} failed authentication`));
  assert.deepEqual(
    (await readdir(dir)).filter((f) => f.startsWith('restored')),
    [],
    'no half-restored image is left behind',
  );
});

test('bad input gets errors that name it', async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 2 * MiB, 1);
  const full = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  const ranges = join(dir, 'ranges.json');
  await writeFile(ranges, JSON.stringify([{ offset: 4 * MiB, length: 10 }]));
  const past = await goldsnap([
    'repo',
    'backup-image',
    image,
    '--repo',
    repo,
    '--parent',
    full.snapshot,
    '--changed',
    ranges,
  ]);
  assert.match(past.stderr, /range #0 .* ends past the end of the disk/);
  const noParent = await goldsnap(['repo', 'backup-image', image, '--repo', repo, '--changed', ranges]);
  assert.match(noParent.stderr, /--changed needs --parent/);
  const noImage = await goldsnap(['repo', 'backup-image', join(dir, 'missing.img'), '--repo', repo]);
  assert.match(noImage.stderr, /cannot read image .*missing.img: no such file/);
  const badSnap = await goldsnap(['repo', 'restore-image', 'zz', join(dir, 'x'), '--repo', repo]);
  assert.match(badSnap.stderr, /"zz" is not a recovery point id/);
  const badSize = await goldsnap(['repo', 'init', '--repo', join(dir, 'r2'), '--chunk-size', '3M']);
  assert.match(badSize.stderr, /chunk size .* power of two/);
});
