import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
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
