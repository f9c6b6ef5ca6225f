import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { backupImage } from '../../src/dataplane/backup-image.ts';
import { restoreImage } from '../../src/dataplane/restore-image.ts';
import { FsBackend } from '../../src/repository/backend/fs.ts';
import { checkRepository } from '../../src/repository/check.ts';
import { prune } from '../../src/repository/prune.ts';
import { Repository } from '../../src/repository/repository.ts';
import { RepositorySession } from '../../src/repository/sessions.ts';
import { MiB, makeDiskImage, sha256File, tempDir } from '../support/disk-images.ts';

test('a backup that starts while a prune plan is pending stores the doomed chunks anew', async (t) => {
  const dir = await tempDir(t);
  const repo = await Repository.init(new FsBackend(join(dir, 'repo')), 'pw', { packSize: 2 * MiB });
  const image = join(dir, 'a.img');
  await makeDiskImage(image, 8 * MiB, 41);
  const first = await backupImage(repo, { imagePath: image, diskName: 'a', source: 'a' });
  await repo.deleteRecoveryPoint(first.id);

  // A backup that is still running (it started before the prune) makes prune wait after it has
  // written its plan, which is the window this test needs.
  const earlier = await RepositorySession.start(repo, 'an earlier backup');
  const logs: string[] = [];
  const pruning = prune(repo, { graceMs: 0, pollMs: 20, log: (l) => logs.push(l) });
  while ((await readdir(join(dir, 'repo', 'prune')).catch(() => [])).length === 0) await sleep(10);

  const second = await backupImage(repo, { imagePath: image, diskName: 'a', source: 'a' });
  const stats = second.point.disks[0].stats;
  assert.equal(
    stats.newChunks,
    stats.readChunks - stats.zeroChunks,
    'no chunk was reused from the packs the plan names',
  );

  await earlier.end();
  const report = await pruning;
  assert.ok(logs.some((l) => l.includes('waiting for 1 running backup')));
  assert.ok(report.deletedPacks > 0);
  assert.equal(report.newPacks, 0, 'nothing in the doomed packs was in use');

  const out = join(dir, 'out.img');
  await restoreImage(repo, { pointId: second.id, targetPath: out });
  assert.equal(await sha256File(out), await sha256File(image));
  const check = await checkRepository(repo);
  assert.deepEqual(check.errors, []);
  assert.deepEqual(check.warnings, []);
});

test('prune gives up cleanly when an earlier backup outlasts --wait', async (t) => {
  const dir = await tempDir(t);
  const repo = await Repository.init(new FsBackend(join(dir, 'repo')), 'pw');
  const image = join(dir, 'a.img');
  await makeDiskImage(image, 4 * MiB, 42);
  const first = await backupImage(repo, { imagePath: image, diskName: 'a', source: 'a' });
  await repo.deleteRecoveryPoint(first.id);
  const running = await RepositorySession.start(repo, 'a long backup');
  t.after(() => running.end());
  await assert.rejects(
    prune(repo, { graceMs: 0, waitMs: 100, pollMs: 20 }),
    /gave up waiting .*a long backup.*nothing was deleted/,
  );
  assert.deepEqual(await readdir(join(dir, 'repo', 'prune')), [], 'the plan is withdrawn');
  assert.ok((await readdir(join(dir, 'repo', 'data'))).length > 0, 'no pack was deleted');
});

test("prune --grace 0 leaves a session marker being written, and a dead writer's goes in time", async (t) => {
  const dir = await tempDir(t);
  const repo = await Repository.init(new FsBackend(join(dir, 'repo')), 'pw');
  // What a backup that is just starting has on disk: its marker's temp file, not yet renamed.
  // Nothing else can protect it (its session does not exist yet), so only its age can.
  await mkdir(join(dir, 'repo', 'sessions'), { recursive: true });
  const starting = join(dir, 'repo', 'sessions', `${'a'.repeat(32)}.0123456789ab.tmp`);
  const dead = join(dir, 'repo', 'sessions', `${'b'.repeat(32)}.0123456789ab.tmp`);
  const pack = join(dir, 'repo', 'data', 'ab', `ab${'0'.repeat(62)}.0123456789ab.tmp`);
  for (const f of [starting, dead, pack]) {
    await mkdir(dirname(f), { recursive: true });
    await writeFile(f, 'x');
  }
  // Ages well clear of the clock's granularity: a minute for the marker being written (grace 0
  // would take it), an hour for the dead one and for a pack's temp file.
  const aMinuteAgo = new Date(Date.now() - 60_000);
  const anHourAgo = new Date(Date.now() - 3600_000);
  await utimes(starting, aMinuteAgo, aMinuteAgo);
  for (const f of [dead, pack]) await utimes(f, anHourAgo, anHourAgo);
  const report = await prune(repo, { graceMs: 0, staleAfterMs: 10 * 60_000 });
  assert.equal(report.deletedLeftovers, 2, 'the dead marker and the pack temp file go');
  assert.ok(existsSync(starting), 'the marker being written stays');
  assert.ok(!existsSync(dead) && !existsSync(pack));
});
