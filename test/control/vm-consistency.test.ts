import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ComputeManagementClient } from '@azure/arm-compute';
import { emulatorClientOptions, readConnectionInfo } from '../../src/emulator/client.ts';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';

/**
 * One recovery point is one instant of the whole VM (VM restore points), even while the VM writes;
 * a VM that cannot have restore points falls back to per-disk snapshots and the run says so.
 */

type Run = {
  id: string;
  step: string;
  error?: string;
  recoveryPointId?: string;
  consistency?: string;
  vmPointId?: string;
  warnings?: string[];
  disks: Array<{ diskId: string; diskName: string; incremental?: boolean; snapshotId?: string }>;
};

function vmSpec(name: string, dataSku?: string) {
  return {
    name,
    resourceGroup: 'rg-cons',
    region: 'westeurope',
    seed: 11,
    tags: { app: name },
    disks: [
      { name: `${name}-os`, sizeBytes: 8 * MiB, role: 'os', fill: 'os-like' },
      {
        name: `${name}-data`,
        sizeBytes: 4 * MiB,
        role: 'data',
        lun: 0,
        fill: 'random',
        ...(dataSku ? { skuName: dataSku } : {}),
      },
      { name: `${name}-log`, sizeBytes: 4 * MiB, role: 'data', lun: 1, fill: 'random' },
    ],
  };
}

describe('one instant per VM', () => {
  let server: ServerUnderTest;
  before(async () => {
    server = await ServerUnderTest.create({ catalog: 'pglite' });
    await server.start();
  });
  after(async () => server.dispose());

  const finish = (runId: string) => server.runEnded<Run>(runId);

  test('a VM writing to two disks without pause during the backup restores to one instant', async () => {
    const vm = await server.createVm(vmSpec('db-1'));
    // Like a database writing its data and its log: each write puts the same sequence number on both disks.
    let stop = false;
    let seq = 0;
    let writes = 0;
    const writer = (async () => {
      while (!stop) {
        seq = (seq % 250) + 1;
        writes++;
        await server.writeToVm('db-1', [
          { diskName: 'db-1-data', offset: 0, length: 4096, pattern: seq },
          { diskName: 'db-1-log', offset: 0, length: 4096, pattern: seq },
        ]);
      }
    })();
    let run: Run;
    let writesAtStart: number;
    try {
      await server.waitFor('the VM to be writing', async () => (writes >= 2 ? true : undefined));
      writesAtStart = writes;
      const started = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;
      run = await finish(started.id);
    } finally {
      stop = true;
      await writer;
    }
    assert.equal(run.step, 'succeeded', run.error);
    assert.ok(writes > writesAtStart + 1, 'the VM kept writing during the backup');
    assert.equal(run.consistency, 'crash');
    assert.ok(run.vmPointId, 'the run took a VM restore point');
    assert.deepEqual(run.warnings ?? [], []);

    const job = await server.cliJson<{ state: string; result: { disks: Array<{ id: string; name: string }> } }>([
      'restore',
      run.recoveryPointId!,
      '--name',
      'db-1-back',
    ]);
    assert.equal(job.state, 'done');
    const head = async (name: string) =>
      (await server.diskContent(job.result.disks.find((d) => d.name === `db-1-back-${name}`)!.id)).subarray(0, 4096);
    const data = await head('db-1-data');
    const log = await head('db-1-log');
    assert.ok(data[0]! > 0 && data.equals(Buffer.alloc(4096, data[0]!)), 'the data disk holds one sequence number');
    assert.ok(log.equals(data), `the restored data and log disks are one instant (data ${data[0]}, log ${log[0]})`);

    const points = await server.cliJson<Array<{ id: string; point: { consistency?: string } }>>([
      'points',
      '--vm',
      vm.id,
    ]);
    assert.equal(points.find((p) => p.id === run.recoveryPointId)?.point.consistency, 'crash');
    const table = await server.cli(['points', '--vm', vm.id]);
    assert.match(table.stdout, /CONSISTENCY[\s\S]*crash/);

    // The next run is incremental on the disk restore points, and the old restore point goes:
    // one golden restore point per VM, none of Goldsnap's snapshots.
    await server.writeToVm('db-1', [{ diskName: 'db-1-os', offset: MiB, length: 4096, pattern: 'random' }]);
    const second = await finish(((await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run).id);
    assert.equal(second.step, 'succeeded', second.error);
    assert.ok(
      second.disks.every((d) => d.incremental),
      'incremental on the previous restore point',
    );
    const cloud = await server.cloud();
    const ours = (await cloud.listGoldsnapVmPoints!()).filter(
      (p) => p.diskPointIds.some((id) => second.disks.some((d) => d.snapshotId === id)) || p.id === run.vmPointId,
    );
    assert.deepEqual(
      ours.map((p) => p.id),
      [second.vmPointId],
      'exactly one golden restore point for the VM',
    );
    const golden = (await server.api('GET', '/api/golden-snapshots')).body as Array<{
      diskId: string;
      snapshotId: string;
    }>;
    for (const d of second.disks) assert.equal(golden.find((g) => g.diskId === d.diskId)?.snapshotId, d.snapshotId);
    const snaps = await cloud.listGoldsnapSnapshots();
    assert.ok(
      !snaps.some((s) => vm.disks.some((d) => d.id.toLowerCase() === s.diskId.toLowerCase())),
      'no per-disk snapshots were made',
    );
  });

  test('a VM with an Ultra disk falls back to per-disk snapshots and says so', async () => {
    // An Ultra disk's snapshot is readable once its background copy ends (30 s by default); waiting
    // for it is snapshot-limits.test.ts's subject, not this one's.
    await server.emulator('POST', 'limits', { backgroundCopyMs: 100 });
    const vm = await server.createVm(vmSpec('fast-1', 'UltraSSD_LRS'));
    const run = await server.cliJson<Run>(['runs', 'start', 'fast-1', '--wait']);
    assert.equal(run.step, 'succeeded', run.error);
    assert.equal(run.consistency, 'per-disk');
    assert.match((run.warnings ?? []).join('\n'), /UltraSSD_LRS[\s\S]*per-disk/);
    const points = await server.cliJson<Array<{ id: string; point: { consistency?: string } }>>([
      'points',
      '--vm',
      vm.id,
    ]);
    assert.equal(points[0]?.point.consistency, 'per-disk');
  });

  test('application consistency: guest scripts through Run Command; a failing or hanging pre-script gives a crash-consistent point and a warning', async () => {
    await server.createVm(vmSpec('app-1'));
    const script = async (name: string, text: string) => {
      const path = join(server.dataDir, name);
      await writeFile(path, text);
      return path;
    };
    const freeze = await script('freeze.sh', '#!/bin/sh\necho flushing tables\n');
    const thaw = await script('thaw.sh', 'echo unlocking tables\n');
    const failing = await script('failing.sh', 'echo cannot lock\nexit 3\n');
    const hanging = await script('hanging.sh', 'sleep 600\n');

    const runOf = async (policy: string, opts: string[]) => {
      await server.cliJson([
        'policies',
        'create',
        policy,
        '--cron',
        '0 3 * * *',
        '--tag',
        'app=app-1',
        '--keep-last',
        '5',
        ...opts,
      ]);
      const [run] = await server.cliJson<Run[]>(['policies', 'run', policy, '--wait']);
      await server.api('PATCH', `/api/policies/${policy}`, { enabled: false });
      return run!;
    };
    const ok = await runOf('app-ok', ['--consistency', 'application', '--pre-script', freeze, '--post-script', thaw]);
    assert.equal(ok.step, 'succeeded', ok.error);
    assert.equal(ok.consistency, 'application');
    assert.deepEqual(ok.warnings ?? [], []);

    const failed = await runOf('app-failing', [
      '--consistency',
      'application',
      '--pre-script',
      failing,
      '--post-script',
      thaw,
    ]);
    assert.equal(failed.step, 'succeeded', failed.error);
    assert.equal(failed.consistency, 'crash', 'a failed pre-script gives a crash-consistent point, not a lost backup');
    assert.match((failed.warnings ?? []).join('\n'), /pre-script failed with exit status 3 .*cannot lock/);

    const hung = await runOf('app-hanging', [
      '--consistency',
      'application',
      '--pre-script',
      hanging,
      '--script-timeout',
      '1',
    ]);
    assert.equal(hung.step, 'succeeded', hung.error);
    assert.equal(hung.consistency, 'crash');
    assert.match((hung.warnings ?? []).join('\n'), /pre-script did not finish within 1 s/);

    const points = await server.cliJson<Array<{ id: string; point: { consistency?: string } }>>(['points']);
    assert.deepEqual(
      [ok, failed, hung].map((r) => points.find((p) => p.id === r.recoveryPointId)?.point.consistency),
      ['application', 'crash', 'crash'],
    );

    const bad = await server.api('POST', '/api/policies', {
      name: 'bad-scripts',
      cron: '0 * * * *',
      selection: { tags: { a: 'b' } },
      retention: { last: 1 },
      consistency: { mode: 'crash', preScript: 'echo' },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /consistency\.preScript/);
  });

  test('a restore keeps disk SKU, generation, security type, zone, tags and VM size, in a group of its own', async () => {
    await server.createVm({
      name: 'tl-1',
      resourceGroup: 'rg-cons',
      region: 'westeurope',
      seed: 5,
      tags: { app: 'tl-1', owner: 'team-a' },
      vmSize: 'Standard_D4s_v5',
      securityType: 'TrustedLaunch',
      zone: '2',
      disks: [
        { name: 'tl-1-os', sizeBytes: 8 * MiB, role: 'os', fill: 'os-like' },
        { name: 'tl-1-data', sizeBytes: 4 * MiB, role: 'data', lun: 0, fill: 'random', skuName: 'StandardSSD_LRS' },
      ],
    });
    const run = await server.cliJson<Run>(['runs', 'start', 'tl-1', '--wait']);
    assert.equal(run.step, 'succeeded', run.error);
    const subnet =
      '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default';
    const job = await server.cliJson<{ state: string; error: string | null }>([
      'restore',
      run.recoveryPointId!,
      '--name',
      'tl-copy',
      '--vm',
      '--subnet',
      subnet,
    ]);
    assert.equal(job.state, 'done', job.error ?? '');

    const o = emulatorClientOptions(readConnectionInfo(join(server.dataDir, 'emulator')));
    const compute = new ComputeManagementClient(o.credential, o.subscriptionId, o.compute);
    const restored = await compute.virtualMachines.get('tl-copy-restore', 'tl-copy');
    assert.equal(restored.hardwareProfile?.vmSize, 'Standard_D4s_v5', 'the source VM size');
    assert.deepEqual(restored.zones, ['2']);
    assert.equal(restored.securityProfile?.securityType, 'TrustedLaunch');
    assert.equal(restored.tags?.owner, 'team-a', 'the source tags');
    assert.match(
      restored.networkProfile?.networkInterfaces?.[0]?.id ?? '',
      /\/resourceGroups\/tl-copy-restore\/providers\/Microsoft\.Network\/networkInterfaces\/tl-copy-nic$/,
      'a NIC made in the subnet',
    );
    const os = await compute.disks.get('tl-copy-restore', 'tl-copy-tl-1-os');
    assert.deepEqual(
      [os.sku?.name, os.osType, os.hyperVGeneration, os.securityProfile?.securityType, os.zones],
      ['Premium_LRS', 'Linux', 'V2', 'TrustedLaunch', ['2']],
    );
    const data = await compute.disks.get('tl-copy-restore', 'tl-copy-tl-1-data');
    assert.equal(data.sku?.name, 'StandardSSD_LRS');
    // The group was made for the restore (Azure needs it to exist), tagged as Goldsnap's.
    const info = readConnectionInfo(join(server.dataDir, 'emulator'));
    const arm = (path: string) =>
      new Promise<{ status: number; body: unknown }>((resolve, reject) => {
        const req = httpsRequest(
          `${info.armEndpoint}/subscriptions/${info.subscriptionId}${path}`,
          { ca: info.caCertPem, headers: { authorization: `Bearer ${info.token}` } },
          (res) => {
            let text = '';
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    const group = (await arm('/resourcegroups/tl-copy-restore?api-version=2021-04-01')).body as {
      location: string;
      tags: Record<string, string>;
    };
    const nicOf = (name: string) =>
      arm(
        `/resourceGroups/${name}-restore/providers/Microsoft.Network/networkInterfaces/${name}-nic?api-version=2024-05-01`,
      );
    const made = (await nicOf('tl-copy')).body as {
      properties: { ipConfigurations: Array<{ properties: { subnet: { id: string } } }> };
    };
    assert.equal(made.properties.ipConfigurations[0]!.properties.subnet.id, subnet);
    assert.equal(group.location, 'westeurope');
    assert.equal(group.tags.goldsnap, 'true');

    // A Gen2 OS disk on a size that runs only Gen1 VMs is refused, as by Azure, and leaves no disk.
    const refused = await server.cli([
      'restore',
      run.recoveryPointId!,
      '--name',
      'tl-small',
      '--vm',
      '--subnet',
      subnet,
      '--vm-size',
      'Standard_A2_v2',
      '--json',
    ]);
    assert.equal(refused.code, 1);
    const gen1 = JSON.parse(refused.stdout) as { state: string; error: string | null };
    assert.equal(gen1.state, 'failed');
    assert.match(gen1.error ?? '', /Generation/);
    const left = [];
    for await (const d of compute.disks.listByResourceGroup('tl-small-restore')) left.push(d.name);
    assert.deepEqual(left, [], 'a failed restore leaves no disk behind');
    assert.equal((await nicOf('tl-small')).status, 404, 'nor the network interface it made');
  });

  test('bad restore input is refused with 400 naming the field, before anything is created', async () => {
    const [point] = await server.cliJson<Array<{ id: string }>>(['points']);
    const o = emulatorClientOptions(readConnectionInfo(join(server.dataDir, 'emulator')));
    const compute = new ComputeManagementClient(o.credential, o.subscriptionId, o.compute);
    const countDisks = async () => {
      let n = 0;
      for await (const _ of compute.disks.list()) n++;
      return n;
    };
    const before = await countDisks();
    const restore = (body: Record<string, unknown>) =>
      server.api('POST', '/api/restores', { recoveryPointId: point!.id, name: 'bad-1', ...body });
    for (const [body, field] of [
      [{ region: 'mars-north' }, 'region'],
      [{ resourceGroup: '../../x' }, 'resourceGroup'],
      [{ resourceGroup: 'rg with spaces' }, 'resourceGroup'],
      [{ name: 'x'.repeat(70) }, 'name'],
      [{ name: 'bad/../1' }, 'name'],
      [
        { networkInterfaceId: '/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/disks/z' },
        'networkInterfaceId',
      ],
      [
        { subnetId: '/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/virtualNetworks/v', createVm: true },
        'subnetId',
      ],
      [{ name: 'tl-copy', resourceGroup: 'tl-copy-restore' }, 'name'],
    ] as const) {
      const r = await restore(body);
      assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status} ${JSON.stringify(r.body)}`);
      assert.ok(
        r.body.field === field || String(r.body.error).includes(field),
        `the error names ${field}: ${JSON.stringify(r.body)}`,
      );
    }
    // The default group is never one a policy selects.
    await server.cliJson([
      'policies',
      'create',
      'restores-too',
      '--cron',
      '0 4 * * *',
      '--resource-group',
      'bad-1-restore',
      '--keep-last',
      '1',
    ]);
    const selected = await restore({});
    assert.equal(selected.status, 400);
    assert.match(selected.body.error, /resourceGroup: .*selected by policy restores-too/);
    assert.equal(await countDisks(), before, 'no disk was created');
  });
});
