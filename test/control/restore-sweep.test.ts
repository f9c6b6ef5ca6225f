import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Cloud } from '../../src/cloud/cloud.ts';
import { type JobPayloads, type RestoreJobPayload, transferQueue } from '../../src/control/jobs.ts';
import { JobQueue } from '../../src/control/queue/job-queue.ts';
import { sweepFailedRestores } from '../../src/control/restore/restore-sweep.ts';
import { forEachBackend } from './backends.ts';

/** A cloud holding a few restored disks; only what the sweep uses. */
function cloudWith(disks: Array<{ id: string; tags: Record<string, string>; attached: boolean }>) {
  const deleted: string[] = [];
  const cloud = {
    listGoldsnapDisks: async () => disks.filter((d) => !deleted.includes(d.id)),
    deleteDisk: async (id: string) => void deleted.push(id),
  } as Partial<Cloud> as Cloud;
  return { cloud, deleted };
}

/** A queued restore of recovery point p to westeurope: the sweep reads only its id. */
function restore(restoreId: string, name: string): RestoreJobPayload {
  return { restoreId, name, pointId: 'p', region: 'westeurope', resourceGroup: 'rg-restore', createVm: false };
}

forEachBackend('restore sweep', (b) => {
  test('the disks of a restore whose proxy died on its last attempt are deleted; others are kept', async () => {
    const q = new JobQueue<JobPayloads>(b.db);
    const queue = transferQueue('westeurope');
    const dead = await q.enqueue({ queue, kind: 'restore', payload: restore('r-dead', 'copy'), maxAttempts: 1 });
    await q.enqueue({ queue, kind: 'restore', payload: restore('r-live', 'other'), maxAttempts: 1 });
    // The proxy claims the dead restore's job and is killed: its lease runs out on the last attempt.
    assert.equal((await q.claim(queue, 'proxy-1', 60_000))?.id, dead.id);
    await b.db.query(`UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1`, [dead.id]);
    // The next claim (another proxy) fails it for good and takes the other restore.
    const next = await q.claim(queue, 'proxy-2', 60_000);
    assert.notEqual(next?.id, dead.id);
    assert.equal((await q.get(dead.id))?.state, 'failed');

    const { cloud, deleted } = cloudWith([
      { id: '/d/copy-os', tags: { goldsnap: 'true', goldsnapRestore: 'r-dead' }, attached: false },
      { id: '/d/copy-attached', tags: { goldsnap: 'true', goldsnapRestore: 'r-dead' }, attached: true },
      { id: '/d/other-os', tags: { goldsnap: 'true', goldsnapRestore: 'r-live' }, attached: false },
      { id: '/d/unknown', tags: { goldsnap: 'true', goldsnapRestore: 'not-this-catalog' }, attached: false },
    ]);
    const lines: string[] = [];
    assert.deepEqual(await sweepFailedRestores(cloud, q, (l) => lines.push(l)), ['/d/copy-os']);
    assert.deepEqual(deleted, ['/d/copy-os'], "a disk a VM uses, a running restore's and an unknown one are kept");
    assert.match(lines.join('\n'), /copy-os of failed restore r-dead/);
  });
});
