import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ComputeManagementClient } from '@azure/arm-compute';
import { emulatorClientOptions, readConnectionInfo } from '../../src/emulator/client.ts';
import { MiB, ServerUnderTest, sleep } from '../support/goldsnap-server.ts';
import { PG_UP, SERVER_URL } from './backends.ts';

/**
 * The seed workflow end to end, as a user drives it: `goldsnap server` with the emulator, the CLI
 * and the REST API. Run on both catalogs: embedded PGlite and a PostgreSQL server.
 */

type Run = {
  id: string;
  step: string;
  error?: string;
  recoveryPointId?: string;
  disks: Array<{
    diskId: string;
    diskName: string;
    incremental?: boolean;
    bytesDone: number;
    snapshotId?: string;
    stats?: { readBytes: number; newChunks: number };
  }>;
};

function vmSpec(name: string, region = 'westeurope') {
  return {
    name,
    resourceGroup: 'rg-e2e',
    region,
    tags: { env: 'e2e' },
    disks: [
      { name: `${name}-os`, sizeBytes: 24 * MiB, role: 'os', fill: 'os-like' },
      { name: `${name}-data`, sizeBytes: 8 * MiB, role: 'data', lun: 0, fill: 'random' },
    ],
  };
}

/**
 * The disks' golden snapshots in the cloud: exactly one per disk, and the one the catalog names.
 * Where the VM has restore points, its one golden restore point holds every disk's golden.
 */
async function assertOneGoldenPerDisk(server: ServerUnderTest, vmId: string): Promise<void> {
  const cloud = await server.cloud();
  const vm = await cloud.getVm(vmId);
  const ours = await cloud.listGoldsnapSnapshots();
  const golden = (await server.api('GET', '/api/golden-snapshots')).body as Array<{
    diskId: string;
    snapshotId: string;
  }>;
  const mine = (await cloud.listGoldsnapVmPoints!()).filter((p) =>
    p.id.toLowerCase().includes(`/restorepointcollections/goldsnap-${vm.name.toLowerCase()}/`),
  );
  if (mine.length > 0) {
    assert.equal(
      mine.length,
      1,
      `VM ${vm.name} has exactly one Goldsnap restore point (has ${mine.map((p) => p.id.split('/').pop()).join(', ')})`,
    );
    for (const disk of vm.disks) {
      assert.ok(
        mine[0].diskPointIds.includes(golden.find((g) => g.diskId === disk.id)?.snapshotId ?? ''),
        `the catalog's golden of ${disk.name} is in that restore point`,
      );
      assert.equal(
        ours.filter((s) => s.diskId.toLowerCase() === disk.id.toLowerCase()).length,
        0,
        `no Goldsnap snapshot of ${disk.name} is left`,
      );
    }
    return;
  }
  for (const disk of vm.disks) {
    const snaps = ours.filter((s) => s.diskId.toLowerCase() === disk.id.toLowerCase());
    assert.equal(
      snaps.length,
      1,
      `disk ${disk.name} has exactly one Goldsnap snapshot (has ${snaps.map((s) => s.name).join(', ')})`,
    );
    assert.equal(
      golden.find((g) => g.diskId === disk.id)?.snapshotId,
      snaps[0].id,
      `the catalog's golden snapshot of ${disk.name} is that one`,
    );
  }
}

/** Restores a recovery point to new disks and compares them with the expected content, bit for bit. */
async function assertRestoresTo(
  server: ServerUnderTest,
  pointId: string,
  name: string,
  expected: Map<string, Buffer>,
  extra: string[] = [],
): Promise<void> {
  const job = await server.cliJson<{
    state: string;
    result: { disks: Array<{ id: string; name: string; region: string }>; vm?: { name: string } };
  }>(['restore', pointId, '--name', name, ...extra]);
  assert.equal(job.state, 'done');
  for (const [diskName, content] of expected) {
    const disk = job.result.disks.find((d) => d.name === `${name}-${diskName}`); // new disks are named <name>-<source disk>
    assert.ok(disk, `restored ${diskName}`);
    const restored = await server.diskContent(disk.id);
    assert.equal(restored.length, content.length, `${diskName} has the source size`);
    assert.ok(restored.equals(content), `${diskName} restores bit for bit`);
  }
}

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

describe('crashes', () => {
  let server: ServerUnderTest;
  before(async () => {
    server = await ServerUnderTest.create({ catalog: 'pglite' });
    await server.start(['--bandwidth', '4MiB']);
  });
  after(async () => server.dispose());

  async function midTransfer(runId: string): Promise<Run> {
    return server.waitFor('the run to be mid-transfer', async () => {
      const r = (await server.api('GET', `/api/runs/${runId}`)).body as Run;
      return r.step === 'transfer' && r.disks.some((d) => d.bytesDone > 0) ? r : undefined;
    });
  }

  async function finish(runId: string): Promise<Run> {
    return server.waitFor(
      'the run to end',
      async () => {
        const r = (await server.api('GET', `/api/runs/${runId}`)).body as Run;
        return r.step === 'succeeded' || r.step === 'failed' ? r : undefined;
      },
      120_000,
    );
  }

  test('kill -9 of a data proxy mid-transfer: another proxy takes the job up and the run succeeds', async () => {
    const vm = await server.createVm(vmSpec('crash-1'));
    const content = new Map(
      await Promise.all(vm.disks.map(async (d) => [d.name, await server.diskContent(d.id)] as const)),
    );
    const run = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;
    await midTransfer(run.id);
    const { proxies } = (await server.api('GET', '/api/proxies')).body as {
      proxies: Array<{ region: string; pid: number }>;
    };
    const proxy = proxies.find((p) => p.region === 'westeurope');
    assert.ok(proxy, 'a proxy serves the VM region');
    process.kill(proxy.pid, 'SIGKILL');
    const done = await finish(run.id);
    assert.equal(done.step, 'succeeded', done.error);
    assert.match(server.log, new RegExp(`pid ${proxy.pid}\\) ended: SIGKILL`));
    await assertOneGoldenPerDisk(server, vm.id);
    await assertRestoresTo(server, done.recoveryPointId!, 'after-proxy-crash', content);
  });

  test('kill -9 of the server mid-run: after a restart the run resumes and succeeds', async () => {
    const vm = await server.createVm(vmSpec('crash-2'));
    const content = new Map(
      await Promise.all(vm.disks.map(async (d) => [d.name, await server.diskContent(d.id)] as const)),
    );
    const run = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;
    await midTransfer(run.id);
    await server.kill9();
    await sleep(500);
    await server.start(['--bandwidth', '4MiB']);
    const done = await finish(run.id);
    assert.equal(done.step, 'succeeded', done.error);
    await assertOneGoldenPerDisk(server, vm.id);
    await assertRestoresTo(server, done.recoveryPointId!, 'after-server-crash', content);

    // The next run is an incremental on the promoted golden snapshots.
    await server.writeToVm('crash-2', [{ diskName: 'crash-2-data', offset: MiB, length: 4096, pattern: 'random' }]);
    const next = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;
    const nextDone = await finish(next.id);
    assert.equal(nextDone.step, 'succeeded', nextDone.error);
    assert.ok(
      nextDone.disks.every((d) => d.incremental),
      'incremental after the crash',
    );
    await assertOneGoldenPerDisk(server, vm.id);
  });

  test('kill -9 of a data proxy mid-restore: the retry clears its own leftovers and restores bit for bit', async () => {
    const vm = await server.createVm(vmSpec('crash-3'));
    const content = new Map(
      await Promise.all(vm.disks.map(async (d) => [d.name, await server.diskContent(d.id)] as const)),
    );
    const run = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;
    const done = await finish(run.id);
    assert.equal(done.step, 'succeeded', done.error);

    const restore = (
      await server.api('POST', '/api/restores', { recoveryPointId: done.recoveryPointId, name: 'crash-restore' })
    ).body as { id: string };
    await server.waitFor('the restore to be writing', async () => {
      const r = (await server.api('GET', `/api/restores/${restore.id}`)).body as {
        progress: { doneBytes: number } | null;
      };
      return (r.progress?.doneBytes ?? 0) > 0 ? true : undefined;
    });
    const { proxies } = (await server.api('GET', '/api/proxies')).body as {
      proxies: Array<{ region: string; pid: number }>;
    };
    process.kill(proxies.find((p) => p.region === 'westeurope')!.pid, 'SIGKILL');
    const result = await server.waitFor(
      'the restore to end',
      async () => {
        const r = (await server.api('GET', `/api/restores/${restore.id}`)).body as {
          state: string;
          error: string | null;
          result: { disks: Array<{ id: string; name: string }> };
        };
        return r.state === 'done' || r.state === 'failed' ? r : undefined;
      },
      120_000,
    );
    assert.equal(result.state, 'done', result.error ?? '');
    for (const [name, expected] of content) {
      const disk = result.result.disks.find((d) => d.name === `crash-restore-${name}`)!;
      assert.ok(
        (await server.diskContent(disk.id)).equals(expected),
        `${name} restores bit for bit after the proxy died`,
      );
    }
    const cloud = await server.cloud();
    assert.equal(
      (await cloud.listVms()).filter((v) => v.name.startsWith('crash-restore')).length,
      0,
      'no VM was asked for',
    );
  });

  test('a lost catalog is rebuilt from the repository, and the next backup is still incremental', async () => {
    const vm = (await server.cloud().then((c) => c.listVms())).find((v) => v.name === 'crash-2')!;
    const before = (await server.cliJson<Array<{ id: string }>>(['points', '--vm', vm.id])).map((p) => p.id).sort();
    await server.stop();
    await rm(join(server.dataDir, 'catalog'), { recursive: true });
    await server.start(['--bandwidth', '4MiB']);
    const after = (await server.cliJson<Array<{ id: string }>>(['points', '--vm', vm.id])).map((p) => p.id).sort();
    assert.deepEqual(after, before, 'every recovery point is back in the new catalog');
    await assertOneGoldenPerDisk(server, vm.id);
    await server.writeToVm('crash-2', [{ diskName: 'crash-2-os', offset: 2 * MiB, length: 4096, pattern: 'random' }]);
    const run = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;
    const done = await finish(run.id);
    assert.equal(done.step, 'succeeded', done.error);
    assert.ok(
      done.disks.every((d) => d.incremental),
      'the recovered golden snapshots are the base of an incremental',
    );
    await assertOneGoldenPerDisk(server, vm.id);
  });
});

describe('scheduler, API and bad input', () => {
  let server: ServerUnderTest;
  before(async () => {
    server = await ServerUnderTest.create({ catalog: 'pglite' });
    await server.start(['--scheduler-interval', '300']);
  });
  after(async () => server.dispose());

  test('a policy runs on its schedule, one run per VM at a time', async () => {
    const vm = await server.createVm({ ...vmSpec('sched-1'), tags: { schedule: 'fast' } });
    await server.cliJson([
      'policies',
      'create',
      'every-2s',
      '--cron',
      '*/2 * * * * *',
      '--tag',
      'schedule=fast',
      '--keep-last',
      '5',
    ]);
    const runs = await server.waitFor('two scheduled runs to succeed', async () => {
      const list = (await server.api('GET', `/api/runs?vmId=${encodeURIComponent(vm.id)}`)).body as Array<
        Run & { createdAt: string; finishedAt?: string; startedAt?: string }
      >;
      return list.filter((r) => r.step === 'succeeded').length >= 2 ? list : undefined;
    });
    await server.api('PATCH', `/api/policies/every-2s`, { enabled: false });
    // Never two runs of the VM at once: each started after the previous one finished.
    const ordered = runs.filter((r) => r.step === 'succeeded').sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    for (let i = 1; i < ordered.length; i++)
      assert.ok(ordered[i].createdAt >= ordered[i - 1].finishedAt!, 'runs of one VM do not overlap');
  });

  test('after downtime, a schedule catches up once, with its latest missed occurrence', async () => {
    const vm = await server.createVm({ ...vmSpec('sched-2'), tags: { schedule: 'catch-up' } });
    const policy = await server.cliJson<{ id: string }>([
      'policies',
      'create',
      'every-10s',
      '--cron',
      '*/10 * * * * *',
      '--tag',
      'schedule=catch-up',
      '--keep-last',
      '10',
    ]);
    await server.waitFor('a scheduled run', async () => {
      const list = (await server.api('GET', `/api/runs?vmId=${encodeURIComponent(vm.id)}`)).body as Run[];
      return list.some((r) => r.step === 'succeeded') ? true : undefined;
    });
    await server.stop();
    const down = Date.now();
    await sleep(22_000); // the server is down across at least two occurrences
    const restartedAt = server.log.length;
    await server.start(['--scheduler-interval', '300']);
    // What the scheduler fired for this policy since the restart, in order.
    const firesSinceRestart = () =>
      [
        ...server.log
          .slice(restartedAt)
          .matchAll(
            new RegExp(
              `policy ${policy.id} fired for (\\S+)(?: \\((\\d+) earlier occurrence\\(s\\) missed while down\\))?`,
              'g',
            ),
          ),
      ].map((m) => ({ scheduledFor: Date.parse(m[1]), missedBefore: Number(m[2] ?? 0) }));
    const catchUp = await server.waitFor('the catch-up fire', async () => firesSinceRestart()[0]);
    await server.api('PATCH', `/api/policies/${policy.id}`, { enabled: false });
    assert.ok(
      catchUp.scheduledFor > down,
      'the first fire after the restart is for an occurrence missed while down (or later)',
    );
    assert.ok(catchUp.missedBefore >= 1, 'the occurrences before it were skipped, not fired one by one');
    const duringDowntime = firesSinceRestart().filter(
      (f) => f.scheduledFor > down && f.scheduledFor <= catchUp.scheduledFor,
    );
    assert.equal(duringDowntime.length, 1, 'one catch-up fire for the downtime, not one per missed occurrence');
  });

  test("one run per VM at a time, and retention thins out only its own policy's points", async () => {
    const vm = await server.createVm({ ...vmSpec('multi-1'), tags: { tier: 'gold' } });
    const [a, b] = await Promise.all([
      server.api('POST', '/api/runs', { vmId: vm.id }),
      server.api('POST', '/api/runs', { vmId: vm.id }),
    ]);
    assert.deepEqual([a.status, b.status].sort(), [202, 409], 'a second run of a busy VM is refused');
    const started = (a.status === 202 ? a : b).body as Run;
    const first = await server.waitFor('the manual run', async () => {
      const r = (await server.api('GET', `/api/runs/${started.id}`)).body as Run;
      return r.step === 'succeeded' ? r : undefined;
    });

    await server.cliJson([
      'policies',
      'create',
      'gold-monthly',
      '--cron',
      '0 0 1 * *',
      '--tag',
      'tier=gold',
      '--keep-monthly',
      '12',
    ]);
    await server.cliJson([
      'policies',
      'create',
      'gold-hourly',
      '--cron',
      '0 * * * *',
      '--tag',
      'tier=gold',
      '--keep-last',
      '1',
    ]);
    const [monthly] = await server.cliJson<Run[]>(['policies', 'run', 'gold-monthly', '--wait']);
    for (let i = 0; i < 2; i++)
      assert.equal((await server.cliJson<Run[]>(['policies', 'run', 'gold-hourly', '--wait']))[0].step, 'succeeded');
    const points = (await server.cliJson<Array<{ id: string }>>(['points', '--vm', vm.id])).map((p) => p.id);
    assert.ok(points.includes(monthly.recoveryPointId!), 'the hourly policy keeps its hands off the monthly point');
    assert.ok(points.includes(first.recoveryPointId!), 'and off the manual one');
    assert.equal(points.length, 3, 'the hourly policy keeps its last point only');
  });

  test('the API asks for a token, enforces roles, validates input and describes itself', async () => {
    assert.equal((await server.api('GET', '/api/vms', undefined, '')).status, 401);
    const viewer = (await server.api('POST', '/api/tokens', { name: 'ops-viewer', role: 'viewer' })).body as {
      token: string;
    };
    assert.equal((await server.api('GET', '/api/runs', undefined, viewer.token)).status, 200);
    const denied = await server.api(
      'POST',
      '/api/policies',
      { name: 'x', cron: '0 * * * *', selection: { tags: { a: 'b' } }, retention: { last: 1 } },
      viewer.token,
    );
    assert.equal(denied.status, 403);
    const bad = await server.api('POST', '/api/policies', {
      name: 'bad',
      cron: 'every day',
      selection: { tags: { a: 'b' } },
      retention: { last: 1 },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /cron/);
    assert.equal((await server.api('GET', '/api/restores/not-a-number')).status, 404);

    // The inventory follows the cloud: a deleted VM leaves `goldsnap vms`.
    const doomed = await server.createVm(vmSpec('deleted-1'));
    assert.ok(
      (await server.cliJson<Array<{ name: string }>>(['vms', '--refresh'])).some((v) => v.name === 'deleted-1'),
    );
    const o = emulatorClientOptions(readConnectionInfo(join(server.dataDir, 'emulator')));
    await new ComputeManagementClient(o.credential, o.subscriptionId, o.compute).virtualMachines.beginDeleteAndWait(
      'rg-e2e',
      doomed.name,
      { updateIntervalInMs: 50 },
    );
    assert.ok(
      !(await server.cliJson<Array<{ name: string }>>(['vms', '--refresh'])).some((v) => v.name === 'deleted-1'),
    );
    const cli = await server.cli([
      'policies',
      'create',
      'bad-tz',
      '--cron',
      '0 2 * * *',
      '--time-zone',
      'Mars/Olympus',
      '--tag',
      'a=b',
      '--keep-last',
      '1',
    ]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /time ?zone/i);
    const spec = (await server.api('GET', '/api/openapi.json')).body as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    assert.match(spec.openapi, /^3\./);
    for (const path of ['/api/vms', '/api/policies', '/api/runs/{id}', '/api/recovery-points', '/api/restores'])
      assert.ok(spec.paths[path], `OpenAPI documents ${path}`);
    assert.ok(
      !JSON.stringify(spec.paths).includes('/internal/'),
      'internal proxy routes stay out of the public document',
    );
  });
});
