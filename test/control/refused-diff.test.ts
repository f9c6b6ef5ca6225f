import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ComputeManagementClient } from '@azure/arm-compute';
import { emulatorClientOptions, readConnectionInfo } from '../../src/emulator/client.ts';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';

/**
 * Azure refuses the diff between a golden snapshot and a new one of a disk deleted and created
 * again under its name (another snapshot family). The run reads that disk in full, says so on the
 * run and in the recovery point, and the VM stays protected with no manual step.
 */
type Run = {
  id: string;
  step: string;
  error?: string;
  warnings?: string[];
  recoveryPointId?: string;
  disks: Array<{ diskName: string; incremental?: boolean; fullReadReason?: string }>;
};

let server: ServerUnderTest;
before(async () => {
  server = await ServerUnderTest.create({ catalog: 'pglite' });
  await server.start();
});
after(async () => server.dispose());

test('a disk recreated under its name is read in full, recorded on the run and the recovery point', async () => {
  const vm = await server.createVm({
    name: 'fb-1',
    resourceGroup: 'rg-fb',
    region: 'westeurope',
    disks: [
      { name: 'fb-1-os', sizeBytes: 8 * MiB, role: 'os', fill: 'os-like' },
      { name: 'fb-1-data', sizeBytes: 4 * MiB, role: 'data', lun: 0, fill: 'random' },
    ],
  });
  await server.cliJson(['vms', '--refresh']);
  const first = await server.cliJson<Run>(['runs', 'start', 'fb-1', '--wait']);
  assert.equal(first.step, 'succeeded', first.error);

  // The data disk is deleted and created again under the same name (from its golden snapshot): a new family.
  const o = emulatorClientOptions(readConnectionInfo(`${server.dataDir}/emulator/connection.json`));
  const compute = new ComputeManagementClient(o.credential, o.subscriptionId, o.compute);
  const poll = { updateIntervalInMs: 20 };
  const golden = (
    (await server.api('GET', '/api/golden-snapshots')).body as Array<{ diskId: string; snapshotId: string }>
  ).find((g) => /fb-1-data$/i.test(g.diskId))!;
  const before = await compute.virtualMachines.get('rg-fb', 'fb-1');
  // The golden is a disk restore point, which a disk cannot be made from here: copy the disk through a snapshot of our own.
  const copy = await compute.snapshots.beginCreateOrUpdateAndWait(
    'rg-fb',
    'fb-1-data-copy',
    { location: 'westeurope', creationData: { createOption: 'Copy', sourceResourceId: golden.diskId } },
    poll,
  );
  await compute.virtualMachines.beginDeleteAndWait('rg-fb', 'fb-1', poll);
  await compute.disks.beginDeleteAndWait('rg-fb', 'fb-1-data', poll);
  await compute.disks.beginCreateOrUpdateAndWait(
    'rg-fb',
    'fb-1-data',
    { location: 'westeurope', creationData: { createOption: 'Copy', sourceResourceId: copy.id! } },
    poll,
  );
  await compute.snapshots.beginDeleteAndWait('rg-fb', 'fb-1-data-copy', poll);
  await compute.virtualMachines.beginCreateOrUpdateAndWait(
    'rg-fb',
    'fb-1',
    {
      location: 'westeurope',
      storageProfile: {
        osDisk: { createOption: 'Attach', managedDisk: { id: before.storageProfile!.osDisk!.managedDisk!.id! } },
        dataDisks: [{ lun: 0, createOption: 'Attach', managedDisk: { id: golden.diskId } }],
      },
    },
    poll,
  );
  await server.writeToVm('fb-1', [{ diskName: 'fb-1-data', offset: MiB, length: 4096, pattern: 'random' }]);
  const expected = await server.diskContent(golden.diskId);

  await server.cliJson(['vms', '--refresh']);
  const second = await server.cliJson<Run>(['runs', 'start', 'fb-1', '--wait']);
  assert.equal(second.step, 'succeeded', second.error);
  const data = second.disks.find((d) => d.diskName === 'fb-1-data')!;
  const os = second.disks.find((d) => d.diskName === 'fb-1-os')!;
  assert.equal(data.incremental, false, 'the recreated disk is read in full');
  assert.match(data.fullReadReason ?? '', /another incremental snapshot family/);
  assert.equal(os.incremental, true, 'the other disk stays incremental');
  assert.ok(
    second.warnings?.some((w) => /disk fb-1-data was read in full/.test(w)),
    `the run says so: ${JSON.stringify(second.warnings)}`,
  );
  const points = (await server.api('GET', `/api/recovery-points?vmId=${encodeURIComponent(vm.id)}`)).body as Array<{
    id: string;
    point: { disks: Array<{ name: string; fullReadReason?: string }> };
  }>;
  const point = points.find((p) => p.id === second.recoveryPointId)!;
  assert.match(
    point.point.disks.find((d) => d.name === 'fb-1-data')?.fullReadReason ?? '',
    /snapshot family/,
    'and so does the recovery point',
  );

  // Still protected: the next run is incremental again, on the new family.
  const third = await server.cliJson<Run>(['runs', 'start', 'fb-1', '--wait']);
  assert.equal(third.step, 'succeeded', third.error);
  assert.ok(
    third.disks.every((d) => d.incremental && !d.fullReadReason),
    JSON.stringify(third.disks),
  );
  const job = await server.cliJson<{ state: string; result: { disks: Array<{ id: string; name: string }> } }>([
    'restore',
    third.recoveryPointId!,
    '--name',
    'fbr',
  ]);
  assert.ok(
    (await server.diskContent(job.result.disks.find((d) => d.name === 'fbr-fb-1-data')!.id)).equals(expected),
    'restores bit for bit',
  );
});
