import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ComputeManagementClient } from '@azure/arm-compute';
import { emulatorClientOptions, readConnectionInfo } from '../../src/emulator/client.ts';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';

/**
 * One server over several subscriptions: a policy selects VMs by subscription, and a restore lands
 * in another subscription than the source's.
 */

type Run = {
  id: string;
  step: string;
  error?: string;
  recoveryPointId?: string;
  disks: Array<{ diskId: string; diskName: string }>;
};

function vmSpec(subscriptionId: string, seed: number) {
  return {
    subscriptionId,
    name: 'web',
    resourceGroup: 'rg-app',
    region: 'westeurope',
    seed,
    tags: { app: 'web' },
    disks: [
      { name: 'web-os', sizeBytes: 8 * MiB, role: 'os', fill: 'os-like' },
      { name: 'web-data', sizeBytes: 4 * MiB, role: 'data', lun: 0, fill: 'random' },
    ],
  };
}

describe('several subscriptions with one server', () => {
  let server: ServerUnderTest;
  before(async () => {
    server = await ServerUnderTest.create({ catalog: 'pglite' });
    await server.start(['--emulator-subscriptions', '2']);
  });
  after(async () => server.dispose());

  test('a policy selecting by subscription backs up a VM of the second one; a restore lands in the first, bit for bit', async () => {
    const info = readConnectionInfo(join(server.dataDir, 'emulator'));
    assert.equal(info.subscriptionIds?.length, 2, 'the emulator hosts two subscriptions');
    const [subA, subB] = info.subscriptionIds as [string, string];
    assert.equal(subA, info.subscriptionId, "the first is the connection file's own");
    // The same group and VM name in both: only the subscription tells them apart.
    const vmA = await server.createVm(vmSpec(subA, 1));
    const vmB = await server.createVm(vmSpec(subB, 2));
    assert.ok(vmB.id.toLowerCase().startsWith(`/subscriptions/${subB.toLowerCase()}/`), vmB.id);
    assert.notEqual(vmA.id.toLowerCase(), vmB.id.toLowerCase());

    const bad = await server.api('POST', '/api/policies', {
      name: 'bad-sub',
      cron: '0 * * * *',
      selection: { subscriptions: ['not-a-guid'] },
      retention: { last: 1 },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /selection\.subscriptions/);

    await server.cliJson([
      'policies',
      'create',
      'sub-b',
      '--cron',
      '0 3 * * *',
      '--subscription',
      subB,
      '--resource-group',
      'rg-app',
      '--keep-last',
      '2',
    ]);
    const runs = await server.cliJson<Run[]>(['policies', 'run', 'sub-b', '--wait']);
    assert.equal(runs.length, 1, 'the policy selects the one VM of the second subscription');
    const run = runs[0]!;
    assert.equal(run.step, 'succeeded', run.error);
    assert.ok(
      run.disks.every((d) => d.diskId.toLowerCase().startsWith(`/subscriptions/${subB.toLowerCase()}/`)),
      "the run backed up the second subscription's disks",
    );

    const unknown = await server.api('POST', '/api/restores', {
      recoveryPointId: run.recoveryPointId,
      name: 'web-copy',
      subscriptionId: '11111111-2222-3333-4444-555555555555',
    });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.error, /subscriptionId/);

    const job = await server.cliJson<{
      state: string;
      error: string | null;
      result: { disks: Array<{ id: string; name: string }> };
    }>(['restore', run.recoveryPointId!, '--name', 'web-copy', '--subscription', subA]);
    assert.equal(job.state, 'done', job.error ?? '');
    for (const source of vmB.disks) {
      const restored = job.result.disks.find((d) => d.name === `web-copy-${source.name}`);
      assert.ok(restored, `disk ${source.name} restored`);
      assert.ok(
        restored.id.toLowerCase().startsWith(`/subscriptions/${subA.toLowerCase()}/`),
        `restored into the first subscription: ${restored.id}`,
      );
      assert.ok(
        (await server.diskContent(restored.id)).equals(await server.diskContent(source.id)),
        `${source.name} restored bit for bit`,
      );
    }
    // Not only the default: a restore asked into the second subscription goes there.
    const back = await server.cliJson<{
      state: string;
      error: string | null;
      result: { disks: Array<{ id: string; name: string }> };
    }>(['restore', run.recoveryPointId!, '--name', 'web-back', '--disk', 'web-data', '--subscription', subB]);
    assert.equal(back.state, 'done', back.error ?? '');
    assert.ok(
      back.result.disks[0]!.id.toLowerCase().startsWith(`/subscriptions/${subB.toLowerCase()}/`),
      back.result.disks[0]!.id,
    );
    // Through Azure's own API: the disk is in the first subscription and not in the second.
    const o = emulatorClientOptions(info);
    const inA = await new ComputeManagementClient(o.credential, subA, o.compute).disks.get(
      'web-copy-restore',
      'web-copy-web-data',
    );
    assert.equal(inA.name, 'web-copy-web-data');
    await assert.rejects(
      new ComputeManagementClient(o.credential, subB, o.compute).disks.get('web-copy-restore', 'web-copy-web-data'),
      (err: { statusCode?: number }) => err.statusCode === 404,
    );
  });
});
