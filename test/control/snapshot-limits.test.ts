import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';

/**
 * Azure refuses a snapshot past its limits (7 per disk per 5 minutes, 500 per disk, 3 pending
 * background copies). A run waits out the limits that clear with time, saying so, and fails with
 * an error naming the disk and the limit after a bounded wait; the 500-per-disk limit fails at
 * once with what to delete. The emulator's limits are lowered through its control API.
 */
type Run = { id: string; step: string; error?: string; warnings?: string[] };

let server: ServerUnderTest;
before(async () => {
  // Long enough that the run never gives up while the test clears the limit below.
  server = await ServerUnderTest.create({ catalog: 'pglite', env: { GOLDSNAP_SNAPSHOT_LIMIT_WAIT_MS: '600000' } });
  await server.start();
});
after(async () => server.dispose());

const limits = (l: Record<string, number>) => server.emulator('POST', 'limits', l);
const getRun = async (id: string) => (await server.api('GET', `/api/runs/${id}`)).body as Run;
const finished = (id: string) => server.runEnded<Run>(id);

test('a run waits out a snapshot limit that clears with time, fails at once on 500 per disk, and after a bounded wait otherwise', async () => {
  // A Premium SSD v2 disk: no VM restore point, so each disk gets an incremental snapshot.
  await server.createVm({
    name: 'lim-1',
    resourceGroup: 'rg-lim',
    region: 'westeurope',
    disks: [
      { name: 'lim-1-os', sizeBytes: 4 * MiB, role: 'os', fill: 'os-like' },
      { name: 'lim-1-data', sizeBytes: 2 * MiB, role: 'data', lun: 0, fill: 'random', skuName: 'PremiumV2_LRS' },
    ],
  });
  await limits({ backgroundCopyMs: 100 });
  await server.cliJson(['vms', '--refresh']);
  const first = await server.cliJson<Run>(['runs', 'start', 'lim-1', '--wait']);
  assert.equal(first.step, 'succeeded', first.error);

  // One snapshot per disk per hour: the next run is refused, waits and says so...
  await limits({ snapshotsPerWindow: 1, snapshotWindowMs: 3_600_000 });
  const started = await server.cliJson<Run>(['runs', 'start', 'lim-1']);
  const waiting = await server.waitFor('the run to wait for the limit', async () => {
    const r = await getRun(started.id);
    assert.notEqual(r.step, 'failed', r.error);
    return r.warnings?.some((w) => /refused its snapshot \(7 incremental snapshots per disk per 5 minutes\)/.test(w))
      ? r
      : undefined;
  });
  assert.equal(waiting.step, 'snapshot');
  // ...and goes on once Azure allows it again.
  await limits({ snapshotWindowMs: 1 });
  const second = await finished(started.id);
  assert.equal(second.step, 'succeeded', second.error);
  assert.ok(
    second.warnings?.some((w) => /disk lim-1-\w+: Azure refused its snapshot/.test(w)),
    JSON.stringify(second.warnings),
  );

  // 500 per disk does not clear by waiting: the run fails at once and says what to delete.
  await limits({ snapshotsPerDisk: 1 });
  const third = await finished((await server.cliJson<Run>(['runs', 'start', 'lim-1'])).id);
  assert.equal(third.step, 'failed');
  assert.match(
    third.error ?? '',
    /disk lim-1-\w+ has reached Azure's limit of 500 incremental snapshots per disk, which waiting does not clear: delete incremental snapshots of lim-1-\w+/,
  );
  assert.ok(!third.warnings?.some((w) => /refused its snapshot/.test(w)), `no wait: ${JSON.stringify(third.warnings)}`);

  // A limit that does not clear within the configured wait fails the run, naming disk and limit.
  server.env.GOLDSNAP_SNAPSHOT_LIMIT_WAIT_MS = '1500';
  await server.stop();
  await server.start();
  await limits({ backgroundCopyMs: 100, snapshotsPerWindow: 1, snapshotWindowMs: 3_600_000 });
  const fourth = await finished((await server.cliJson<Run>(['runs', 'start', 'lim-1'])).id);
  assert.equal(fourth.step, 'failed');
  assert.match(
    fourth.error ?? '',
    /disk lim-1-\w+ has reached Azure's limit of 7 incremental snapshots per disk per 5 minutes.*Waited 2 s for it to clear/,
  );
  assert.ok(
    fourth.warnings?.some((w) => /refused its snapshot/.test(w)),
    JSON.stringify(fourth.warnings),
  );

  // Nothing is left behind by the failed runs: only the golden snapshots remain.
  const cloud = await server.cloud();
  const snapshots = (await cloud.listGoldsnapSnapshots()).filter((s) => /lim-1/.test(s.diskId));
  assert.equal(snapshots.length, 2, snapshots.map((s) => s.name).join(', '));
});
