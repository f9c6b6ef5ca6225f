import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { backupImage } from '../../src/dataplane/backup-image.ts';
import { openImageWriter } from '../../src/dataplane/disk-io.ts';
import { restoreDisk } from '../../src/dataplane/restore-disk.ts';
import { ChunkCodec } from '../../src/dataplane/chunk-codec.ts';
import { FsBackend } from '../../src/repository/backend/fs.ts';
import { prune } from '../../src/repository/prune.ts';
import { Repository } from '../../src/repository/repository.ts';
import { RepositorySession } from '../../src/repository/sessions.ts';
import { MiB, makeDiskImage, overwrite, sha256File, tempDir } from '../support/disk-images.ts';

test('a restore that read the index before a prune repacked its chunks reads the index again and restores bit for bit', async (t) => {
  const dir = await tempDir(t);
  const repo = await Repository.init(new FsBackend(join(dir, 'repo')), 'pw', { packSize: 4 * MiB });
  const image = join(dir, 'a.img');
  await makeDiskImage(image, 16 * MiB, 51);
  await overwrite(image, [{ offset: 0, length: 16 * MiB }]);
  const old = await backupImage(repo, { imagePath: image, diskName: 'a', source: 'a' });
  for (let mib = 0; mib < 16; mib += 2) await overwrite(image, [{ offset: mib * MiB, length: MiB }]);
  const kept = await backupImage(repo, { imagePath: image, diskName: 'a', source: 'a' });
  await repo.deleteRecoveryPoint(old.id);

  // A backup still running holds prune after its plan; the restore reads the index meanwhile
  // (as one that started after the plan would: prune does not wait for it).
  const earlier = await RepositorySession.start(repo, 'an earlier backup');
  const pruning = prune(repo, { graceMs: 0, pollMs: 20 });
  while ((await readdir(join(dir, 'repo', 'prune')).catch(() => [])).length === 0) await sleep(10);
  const staleIndex = await repo.loadIndex();
  await earlier.end();
  const report = await pruning;
  assert.ok(report.repackedPacks > 0, 'prune moved chunks the restore needs');

  const disk = await repo.loadFixedIndex(kept.point.disks[0].fixedIndex);
  const out = join(dir, 'out.img');
  const writer = await openImageWriter(out, disk.sizeBytes);
  const codec = new ChunkCodec(repo.key, 1);
  let reloads = 0;
  const result = await restoreDisk({
    repo,
    index: staleIndex,
    disk,
    writer,
    codec,
    reloadIndex: () => {
      reloads++;
      return repo.loadIndex();
    },
  });
  await writer.commit();
  assert.deepEqual(result.damaged, []);
  assert.equal(reloads, 1);
  assert.equal(await sha256File(out), await sha256File(image));
});
