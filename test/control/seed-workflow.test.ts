import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ComputeManagementClient } from '@azure/arm-compute';
import { emulatorClientOptions, readConnectionInfo } from '../../src/emulator/client.ts';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';
import { assertOneGoldenPerDisk, assertRestoresTo, type Run, vmSpec } from '../support/end-to-end.ts';
import { PG_UP, SERVER_URL } from './backends.ts';

/**
 * The seed workflow end to end, as a user drives it: `goldsnap server` with the emulator, the CLI
 * and the REST API. Run on both catalogs: embedded PGlite and a PostgreSQL server.
 */
for (const catalog of ['pglite', 'postgres'] as const) {
  describe(`seed workflow on ${catalog}`, {
    skip: catalog === 'postgres' && !PG_UP ? `no PostgreSQL at ${SERVER_URL}` : false,
  }, () => {
    let server: ServerUnderTest;
    before(async () => {
      server = await ServerUnderTest.create({ catalog });
      await server.start();
    });
    after(async () => server.dispose());

    test('full backup, then an incremental that reads only the changed blocks; restores are bit for bit', async () => {
      const vm = await server.createVm(vmSpec('app-1'));
      const vms = await server.cliJson<Array<{ name: string; disks: unknown[] }>>(['vms', '--refresh']);
      assert.equal(vms.find((v) => v.name === 'app-1')?.disks.length, 2);

      const policy = await server.cliJson<{ name: string }>([
        'policies',
        'create',
        'e2e-nightly',
        '--cron',
        '0 2 * * *',
        '--time-zone',
        'Europe/Paris',
        '--tag',
        'env=e2e',
        '--keep-last',
        '2',
      ]);
      assert.equal(policy.name, 'e2e-nightly');

      const atFirst = new Map(
        await Promise.all(vm.disks.map(async (d) => [d.name, await server.diskContent(d.id)] as const)),
      );
      const [first] = await server.cliJson<Run[]>(['policies', 'run', 'e2e-nightly', '--wait']);
      assert.equal(first.step, 'succeeded', first.error);
      assert.ok(
        first.disks.every((d) => d.incremental === false),
        'the first backup reads every disk in full',
      );
      await assertOneGoldenPerDisk(server, vm.id);

      // The VM writes 3 small ranges on its OS disk; its data disk does not change.
      await server.writeToVm('app-1', [
        { diskName: 'app-1-os', offset: 3 * MiB + 4096, length: 8192, pattern: 'random' },
        { diskName: 'app-1-os', offset: 17 * MiB, length: 65536, pattern: 'random' },
        { diskName: 'app-1-os', offset: 20 * MiB, length: 4096, pattern: 'zeros' },
      ]);
      const atSecond = new Map(
        await Promise.all(vm.disks.map(async (d) => [d.name, await server.diskContent(d.id)] as const)),
      );
      const [second] = await server.cliJson<Run[]>(['policies', 'run', 'e2e-nightly', '--wait']);
      assert.equal(second.step, 'succeeded', second.error);
      const os = second.disks.find((d) => d.diskName === 'app-1-os')!;
      const data = second.disks.find((d) => d.diskName === 'app-1-data')!;
      assert.ok(os.incremental && data.incremental, 'the second backup is incremental');
      assert.ok(
        os.stats!.readBytes <= 3 * MiB,
        `only the changed chunks of the OS disk are read (${os.stats!.readBytes} bytes)`,
      );
      assert.equal(data.stats!.readBytes, 0, 'nothing is read from the unchanged data disk');
      await assertOneGoldenPerDisk(server, vm.id);
      assert.notEqual(os.snapshotId, first.disks.find((d) => d.diskName === 'app-1-os')!.snapshotId);

      const nic =
        '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-net/providers/Microsoft.Network/networkInterfaces/latest-nic';
      await assertRestoresTo(server, second.recoveryPointId!, 'latest', atSecond, [
        '--region',
        'eastus',
        '--vm',
        '--nic',
        nic,
      ]);
      const o = emulatorClientOptions(readConnectionInfo(join(server.dataDir, 'emulator')));
      // Restored into a group of its own (<name>-restore), which no policy selects.
      const restoredVm = await new ComputeManagementClient(
        o.credential,
        o.subscriptionId,
        o.compute,
      ).virtualMachines.get('latest-restore', 'latest');
      assert.equal(restoredVm.location, 'eastus');
      assert.equal(
        restoredVm.networkProfile?.networkInterfaces?.[0]?.id,
        nic,
        'the restored VM has the network interface asked for',
      );
      await assertRestoresTo(server, first.recoveryPointId!, 'older', atFirst);
      // A restore never overwrites what exists: here, the source VM itself.
      const clash = await server.cli([
        'restore',
        first.recoveryPointId!,
        '--name',
        'app-1',
        '--vm',
        '--resource-group',
        'rg-e2e',
      ]);
      assert.equal(clash.code, 1);
      assert.match(clash.stdout + clash.stderr, /a VM named app-1 already exists in resource group rg-e2e/);

      // Retention keeps the last 2: a third run forgets the first recovery point.
      const [third] = await server.cliJson<Run[]>(['policies', 'run', 'e2e-nightly', '--wait']);
      assert.equal(third.step, 'succeeded', third.error);
      const points = await server.cliJson<Array<{ id: string }>>(['points', '--vm', vm.id]);
      assert.deepEqual(points.map((p) => p.id).sort(), [second.recoveryPointId, third.recoveryPointId].sort());
      await assertOneGoldenPerDisk(server, vm.id);

      // Data proxies are removed once their region has no work (--proxy-idle 3 here).
      await server.waitFor(
        'the idle proxies to stop',
        async () => {
          const r = await server.cliJson<{ proxies: unknown[] }>(['proxies']);
          return r.proxies.length === 0 ? true : undefined;
        },
        20_000,
      );
      assert.match(server.log, /proxy for westeurope \(pid \d+\) ended: exit 0/);
    });

    test('a run whose snapshot vanishes fails, deletes its own snapshots and keeps the golden ones', async () => {
      const vm = await server.createVm(vmSpec('app-2'));
      const ok = await server.cliJson<Run>(['runs', 'start', 'app-2', '--wait']);
      assert.equal(ok.step, 'succeeded', ok.error);
      const goldenBefore = (await server.api('GET', '/api/golden-snapshots')).body as Array<{
        diskId: string;
        snapshotId: string;
      }>;

      // Slow the proxy down so the run is caught mid-transfer, then delete its new snapshot.
      await server.stop();
      await server.start(['--bandwidth', '2MiB']);
      const started = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;
      const run = await server.waitFor('the run to snapshot its disks', async () => {
        const r = (await server.api('GET', `/api/runs/${started.id}`)).body as Run;
        return r.step === 'transfer' && r.disks.every((d) => d.snapshotId) ? r : undefined;
      });
      const cloud = await server.cloud();
      await cloud.deleteSnapshot(run.disks[0].snapshotId!);
      const failed = await server.waitFor('the run to fail', async () => {
        const r = (await server.api('GET', `/api/runs/${started.id}`)).body as Run;
        return r.step === 'failed' ? r : undefined;
      });
      assert.match(failed.error!, /snapshot|not found|gone/i);
      const goldenAfter = (await server.api('GET', '/api/golden-snapshots')).body as Array<{
        diskId: string;
        snapshotId: string;
      }>;
      assert.deepEqual(
        goldenAfter
          .filter((g) => vm.disks.some((d) => d.id === g.diskId))
          .sort((a, b) => a.diskId.localeCompare(b.diskId)),
        goldenBefore
          .filter((g) => vm.disks.some((d) => d.id === g.diskId))
          .sort((a, b) => a.diskId.localeCompare(b.diskId)),
      );
      await assertOneGoldenPerDisk(server, vm.id);

      // A snapshot a finished run left behind (as after a crash mid-delete) goes at the next start;
      // one no run of this catalog made is left alone.
      const disk = vm.disks[0];
      const leaked = await cloud.createSnapshot({
        disk: { id: disk.id, name: disk.name, region: 'westeurope', sizeBytes: disk.sizeBytes, role: 'os' },
        name: 'leaked-by-test',
        tags: { goldsnap: 'true', goldsnapRun: failed.id },
      });
      const foreign = await cloud.createSnapshot({
        disk: { id: disk.id, name: disk.name, region: 'westeurope', sizeBytes: disk.sizeBytes, role: 'os' },
        name: 'someone-elses',
        tags: { goldsnap: 'true', goldsnapRun: 'not-ours' },
      });
      await server.stop();
      await server.start();
      const restarted = await server.cloud(); // the emulator listens on a new port
      assert.equal(await restarted.getSnapshot(leaked.id), undefined, 'the leaked snapshot is swept');
      assert.ok(await restarted.getSnapshot(foreign.id), 'a snapshot of an unknown run is kept');
      await restarted.deleteSnapshot(foreign.id);
      await assertOneGoldenPerDisk(server, vm.id);
    });
  });
}
