import assert from 'node:assert/strict';
import { mkdir, open, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MiB, makeDiskImage, overwrite, sha256File, tempDir } from '../support/disk-images.ts';
import { finished, goldsnap, goldsnapJson, startGoldsnap } from '../support/goldsnap-cli.ts';

async function newRepo(t: any, packSize = '1M') {
  const dir = await tempDir(t);
  const repo = join(dir, 'repo');
  await goldsnapJson(['repo', 'init', '--repo', repo, '--pack-size', packSize]);
  return { dir, repo };
}

async function flipByte(path: string, at: number): Promise<void> {
  const fh = await open(path, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, at);
  b[0] ^= 0xff;
  await fh.write(b, 0, 1, at);
  await fh.close();
}

/** Session markers in place (not the temp file of one being written). */
async function sessionMarkers(repo: string): Promise<string[]> {
  return (await readdir(join(repo, 'sessions')).catch(() => [] as string[])).filter((f) => !f.endsWith('.tmp'));
}

async function waitFor(what: string, cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('a damaged or lost index: check says to repair, repair index rebuilds it from the packs', async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 6 * MiB, 3);
  const first = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  await overwrite(image, [{ offset: 0, length: MiB }]);
  const second = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  const indexFiles = await readdir(join(repo, 'index'));
  assert.equal(indexFiles.length, 2);
  await flipByte(join(repo, 'index', indexFiles[0]), 40);
  await rm(join(repo, 'index', indexFiles[1]));

  const out = join(dir, 'out.img');
  const refused = await goldsnap(['repo', 'restore-image', first.snapshot, out, '--repo', repo]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /in no index: run `goldsnap repo check` \(and `goldsnap repo repair index` if it says so\)/,
  );
  const check = await goldsnap(['repo', 'check', '--repo', repo]);
  assert.equal(check.code, 1);
  assert.match(check.stdout, new RegExp(`error: index file ${indexFiles[0]} cannot be read`));
  assert.match(check.stdout, /repair: run `goldsnap repo repair index`/);

  const repaired = await goldsnapJson(['repo', 'repair', 'index', '--repo', repo]);
  assert.equal(repaired.replacedIndexFiles, 1);
  assert.deepEqual(repaired.damagedPacks, []);
  const after = await goldsnapJson(['repo', 'check', '--read-data', '--repo', repo]);
  assert.deepEqual([after.errors, after.warnings, after.advice], [[], [], []]);
  await goldsnapJson(['repo', 'restore-image', second.snapshot, out, '--repo', repo]);
  assert.equal(await sha256File(out), await sha256File(image));
});

test('restore-image --salvage restores all that can be read, zeros the damaged chunk, lists it and exits 3', async (t) => {
  const { dir, repo } = await newRepo(t, '4M');
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 8 * MiB, 5);
  await overwrite(image, [{ offset: 0, length: 8 * MiB }]);
  const b = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  const sub = (await readdir(join(repo, 'data')))[0];
  const pack = (await readdir(join(repo, 'data', sub)))[0];
  await flipByte(join(repo, 'data', sub, pack), 1000);

  const out = join(dir, 'out.img');
  const plain = await goldsnap(['repo', 'restore-image', b.snapshot, out, '--repo', repo]);
  assert.equal(plain.code, 1);
  assert.match(plain.stderr, /failed authentication[\s\S]*restore-image --salvage/);

  const salvage = await goldsnap(['repo', 'restore-image', b.snapshot, out, '--repo', repo, '--salvage', '--json']);
  assert.equal(salvage.code, 3, salvage.stderr);
  const result = JSON.parse(salvage.stdout);
  assert.equal(result.damaged.length, 1);
  const [damage] = result.damaged;
  assert.equal(damage.length, MiB);
  assert.match(damage.reason, /failed authentication/);
  const original = await readFile(image);
  const restored = await readFile(out);
  assert.equal(restored.length, original.length);
  assert.ok(
    restored.subarray(damage.offset, damage.offset + damage.length).every((x) => x === 0),
    'the damaged range is zeros',
  );
  assert.ok(restored.subarray(0, damage.offset).equals(original.subarray(0, damage.offset)));
  assert.ok(restored.subarray(damage.offset + damage.length).equals(original.subarray(damage.offset + damage.length)));
  const text = await goldsnap(['repo', 'restore-image', b.snapshot, out, '--repo', repo, '--salvage', '--force']);
  assert.equal(text.code, 3);
  assert.match(
    text.stdout,
    new RegExp(
      `damaged: bytes ${damage.offset}-${damage.offset + damage.length - 1} \\(1\\.00 MiB\\) written as zeros`,
    ),
  );
});

test('a killed backup leaves a dead session marker and temp files: check tells, prune clears them', async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 64 * MiB, 8);
  await overwrite(image, [{ offset: 0, length: 64 * MiB }]);
  const child = startGoldsnap(['repo', 'backup-image', image, '--repo', repo, '--workers', '1']);
  const done = finished(child);
  await waitFor('the backup session', async () => (await sessionMarkers(repo)).length > 0);
  child.kill('SIGKILL');
  await done;
  // A temp file as a write cut short leaves it, from before the grace period.
  await mkdir(join(repo, 'data', 'ab'), { recursive: true });
  const tmp = join(repo, 'data', 'ab', `ab${'0'.repeat(62)}.0123456789ab.tmp`);
  await writeFile(tmp, Buffer.alloc(4096));
  const old = new Date(Date.now() - 2 * 3_600_000);
  await utimes(tmp, old, old);

  const check = await goldsnapJson(['repo', 'check', '--repo', repo]);
  assert.deepEqual(check.errors, []);
  assert.match(check.warnings.join('\n'), /1 markers of backups or restores that died/);
  assert.match(check.warnings.join('\n'), /temp files .* of interrupted writes/);
  const pruned = await goldsnapJson(['repo', 'prune', '--repo', repo]);
  assert.equal(pruned.deletedSessions, 1);
  assert.ok(pruned.deletedLeftovers >= 1);
  assert.deepEqual(await readdir(join(repo, 'sessions')), []);
  const after = await goldsnapJson(['repo', 'check', '--repo', repo]);
  assert.doesNotMatch(after.warnings.join('\n'), /temp files|died/);
});

test('a restore running while prune repacks what it reads makes prune wait, and restores bit for bit', async (t) => {
  const { dir, repo } = await newRepo(t, '8M');
  const image = join(dir, 'disk.img');
  // Two points whose chunks share packs: forgetting the first leaves packs mostly unused, to repack.
  await makeDiskImage(image, 32 * MiB, 12);
  await overwrite(image, [{ offset: 0, length: 32 * MiB }]);
  await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  for (let mib = 0; mib < 32; mib += 2) await overwrite(image, [{ offset: mib * MiB, length: MiB }]);
  const keep = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  await goldsnapJson(['repo', 'forget', '--repo', repo, '--keep-last', '1']);

  // The restore is frozen once its session exists, and let go once prune says it waits for it.
  const out = join(dir, 'out.img');
  const restore = startGoldsnap(['repo', 'restore-image', keep.snapshot, out, '--repo', repo, '--workers', '1']);
  const restored = finished(restore);
  // Whatever fails below, a frozen child must not outlive the test.
  t.after(() => {
    restore.kill('SIGKILL');
  });
  await waitFor('the restore session', async () => (await sessionMarkers(repo)).length > 0);
  restore.kill('SIGSTOP');
  const prune = startGoldsnap(['repo', 'prune', '--repo', repo, '--grace', '0', '--json']);
  const pruned = finished(prune);
  let said = '';
  prune.stderr!.on('data', (d) => {
    said += d;
  });
  await waitFor('prune to wait for the restore', async () => /waiting for 1 running/.test(said));
  restore.kill('SIGCONT');
  const r = await restored;
  assert.equal(r.code, 0, r.stderr);
  const p = await pruned;
  assert.equal(p.code, 0, p.stderr);
  assert.ok(JSON.parse(p.stdout).repackedPacks > 0, 'prune repacked packs the restore read');
  assert.equal(await sha256File(out), await sha256File(image));
  const check = await goldsnapJson(['repo', 'check', '--read-data', '--repo', repo]);
  assert.deepEqual(check.errors, []);
});
