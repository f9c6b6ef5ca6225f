import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MiB, ServerUnderTest, sleep } from '../support/goldsnap-server.ts';
import { assertOneGoldenPerDisk, assertRestoresTo, type Run, vmSpec } from '../support/end-to-end.ts';

/**
 * kill -9 of a data proxy or of the server mid-run and mid-restore, and a lost catalog: each ends
 * with a run that succeeds, one golden snapshot per disk and restores bit for bit.
 */
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

  const finish = (runId: string) => server.runEnded<Run>(runId);

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
