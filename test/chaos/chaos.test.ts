import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ComputeManagementClient } from '@azure/arm-compute';
import { emulatorClientOptions, readConnectionInfo } from '../../src/emulator/client.ts';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';

/**
 * The chaos suite: whole `goldsnap server`s against the emulator's seeded fault profile (ARM 429
 * with Retry-After, 503 ServerBusy, 500 OperationTimedOut, reads dropped mid-body, snapshots that
 * take seconds), with kill -9 of the server or of a data proxy at random moments. Every run must
 * end succeeded or failed with a clear error; after each server: exactly one golden snapshot per
 * disk, the incremental recovery point restores bit for bit, and no snapshot, disk or SAS is left.
 *
 * `npm run chaos` runs 30 servers (CHAOS_RUNS, seeds from CHAOS_SEED); `npm test` runs seed 1 only
 * and `.ci/run` adds seeds 2 to 7.
 */
const RUNS = Number(process.env.CHAOS_RUNS ?? 1);
const FIRST_SEED = Number(process.env.CHAOS_SEED ?? 1);

type Run = {
  id: string;
  step: string;
  error?: string;
  recoveryPointId?: string;
  disks: Array<{ diskName: string; incremental?: boolean; stats?: { readBytes: number } }>;
};

const figures = {
  servers: 0,
  backupRuns: 0,
  succeeded: 0,
  failedWithClearError: 0,
  serverKills: 0,
  proxyKills: 0,
  injected: { throttle: 0, busy: 0, timeout: 0, drop: 0 },
  retries: 0,
  incrementalBytesRead: 0,
  changedBytesWritten: 0,
  leaks: 0,
  failures: [] as string[],
};

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function collectFaults(server: ServerUnderTest): Promise<void> {
  const f = JSON.parse((await server.emulator('GET', 'faults')).toString()) as {
    injected: Record<string, number>;
    retries: number;
  };
  for (const k of Object.keys(figures.injected) as Array<keyof typeof figures.injected>)
    figures.injected[k] += f.injected[k] ?? 0;
  figures.retries += f.retries;
}

/** Starts a backup of the VM and sees it to its end, killing the server or a proxy on the way if `chaos` says so. */
async function backup(server: ServerUnderTest, vmId: string, faults: string, chaos: () => number): Promise<Run> {
  figures.backupRuns++;
  const started = await server.api('POST', '/api/runs', { vmId });
  assert.equal(started.status < 300, true, JSON.stringify(started.body));
  const id = (started.body as Run).id;
  const roll = chaos();
  const killServer = roll < 0.25;
  const killProxy = roll >= 0.25 && roll < 0.5;
  let killed = false;
  const run = await server.waitFor(
    `run ${id}`,
    async () => {
      const r = (await server.api('GET', `/api/runs/${id}`)).body as Run;
      if (r.step === 'succeeded' || r.step === 'failed') return r;
      if (!killed && r.step === 'transfer') {
        if (killServer) {
          killed = true;
          await collectFaults(server);
          await server.kill9();
          figures.serverKills++;
          await server.start(['--faults', faults]);
        } else if (killProxy) {
          const { proxies } = (await server.api('GET', '/api/proxies')).body as { proxies: Array<{ pid: number }> };
          if (proxies[0]) {
            killed = true;
            process.kill(proxies[0].pid, 'SIGKILL');
            figures.proxyKills++;
          }
        }
      }
      return undefined;
    },
    600_000,
  );
  if (run.step === 'succeeded') figures.succeeded++;
  else {
    // A failure must say what went wrong, in words.
    assert.ok(
      run.error && run.error.length > 10 && !/undefined|\[object/.test(run.error),
      `run ${id} failed without a clear error: ${run.error}`,
    );
    figures.failedWithClearError++;
    figures.failures.push(run.error);
  }
  return run;
}

/** Backs up until a run succeeds (a failed run is retried, as the next schedule would). */
async function backupUntilSucceeded(
  server: ServerUnderTest,
  vmId: string,
  faults: string,
  chaos: () => number,
): Promise<Run> {
  for (let attempt = 0; attempt < 4; attempt++) {
    const run = await backup(server, vmId, faults, chaos);
    if (run.step === 'succeeded') return run;
  }
  throw new Error(`no backup of ${vmId} succeeded in 4 runs: ${figures.failures.slice(-4).join(' | ')}`);
}

async function assertNoLeaks(server: ServerUnderTest, vmId: string, diskIds: string[]): Promise<void> {
  const info = readConnectionInfo(`${server.dataDir}/emulator/connection.json`);
  const o = emulatorClientOptions(info);
  const compute = new ComputeManagementClient(o.credential, o.subscriptionId, o.compute);
  const snapshots = [];
  for await (const s of compute.snapshots.list()) snapshots.push(s);
  const disks = [];
  for await (const d of compute.disks.list()) disks.push(d);
  const golden = (await server.api('GET', '/api/golden-snapshots')).body as Array<{
    diskId: string;
    snapshotId: string;
  }>;
  const expected = new Set(golden.filter((g) => diskIds.includes(g.diskId)).map((g) => g.snapshotId.toLowerCase()));
  // A golden is a snapshot, or (one instant of the VM) a disk restore point of the VM's golden restore point.
  const goldenPoints = new Set(
    [...expected]
      .filter((id) => /\/diskRestorePoints\//i.test(id))
      .map((id) => id.replace(/\/diskRestorePoints\/.*$/i, '')),
  );
  const points = await (await server.cloud()).listGoldsnapVmPoints!();
  const extraPoints = points.filter((p) => !goldenPoints.has(p.id.toLowerCase()));
  const extraSnapshots = snapshots.filter((s) => !expected.has(s.id!.toLowerCase()));
  const extraDisks = disks.filter((d) => !diskIds.some((id) => id.toLowerCase() === d.id!.toLowerCase()));
  const grants = (JSON.parse((await server.emulator('GET', 'grants')).toString()) as { value: unknown[] }).value;
  figures.leaks += extraSnapshots.length + extraDisks.length + grants.length + extraPoints.length;
  assert.equal(expected.size, diskIds.length, `one golden snapshot per disk of ${vmId}`);
  for (const id of diskIds) {
    const g = golden.find((x) => x.diskId.toLowerCase() === id.toLowerCase())!;
    if (/\/diskRestorePoints\//i.test(g.snapshotId)) continue;
    assert.equal(
      snapshots.filter((s) => s.creationData?.sourceResourceId?.toLowerCase() === id.toLowerCase()).length,
      1,
      `exactly one snapshot of ${id}`,
    );
  }
  assert.ok(goldenPoints.size <= 1, `at most one golden restore point for ${vmId}`);
  assert.deepEqual(
    extraPoints.map((p) => p.id),
    [],
    'no restore point left behind',
  );
  assert.deepEqual(
    extraSnapshots.map((s) => s.name),
    [],
    'no snapshot left behind',
  );
  assert.deepEqual(
    extraDisks.map((d) => d.name),
    [],
    'no disk left behind',
  );
  assert.deepEqual(grants, [], 'no SAS left open');
}

after(() => {
  const { failures, ...shown } = figures;
  process.stdout.write(`chaos figures: ${JSON.stringify(shown)}\n`);
  if (failures.length)
    process.stdout.write(
      `chaos: runs that failed (with their errors):\n${failures.map((f) => `  - ${f}`).join('\n')}\n`,
    );
});

for (let i = 0; i < RUNS; i++) {
  const seed = FIRST_SEED + i;
  test(`chaos seed ${seed}: the whole server under faults and kill -9`, async () => {
    const faults = `default,seed=${seed},snapshot-ms=1500,access-ms=300`;
    const chaos = rng(seed * 7919);
    const server = await ServerUnderTest.create({ catalog: 'pglite' });
    figures.servers++;
    try {
      await server.start(['--faults', faults]);
      const name = `chaos-${seed}`;
      const vm = await server.createVm({
        name,
        resourceGroup: 'rg-chaos',
        region: 'westeurope',
        seed,
        disks: [
          { name: `${name}-os`, sizeBytes: 16 * MiB, role: 'os', fill: 'os-like' },
          { name: `${name}-data`, sizeBytes: 8 * MiB, role: 'data', lun: 0, fill: 'random' },
        ],
      });
      await server.cliJson(['vms', '--refresh']);
      const full = await backupUntilSucceeded(server, vm.id, faults, chaos);
      assert.ok(full.recoveryPointId);

      const writes = [
        { diskName: `${name}-os`, offset: Math.floor(chaos() * 15) * MiB, length: 65536, pattern: 'random' as const },
        {
          diskName: `${name}-data`,
          offset: Math.floor(chaos() * 7) * MiB + 4096,
          length: 8192,
          pattern: 'random' as const,
        },
      ];
      await server.writeToVm(name, writes);
      figures.changedBytesWritten += writes.reduce((n, w) => n + w.length, 0);
      const expected = new Map(
        await Promise.all(vm.disks.map(async (d) => [d.name, await server.diskContent(d.id)] as const)),
      );
      const incr = await backupUntilSucceeded(server, vm.id, faults, chaos);
      // A run that failed mid-transfer leaves the golden as it was, so the next is still incremental.
      assert.ok(
        incr.disks.every((d) => d.incremental),
        `the second backup is incremental: ${JSON.stringify(incr.disks)}`,
      );
      const read = incr.disks.reduce((n, d) => n + (d.stats?.readBytes ?? 0), 0);
      figures.incrementalBytesRead += read;
      assert.ok(read <= 4 * MiB, `the incremental reads only the changed ranges (${read} bytes)`);

      const job = await server.cliJson<{ state: string; result: { disks: Array<{ id: string; name: string }> } }>([
        'restore',
        incr.recoveryPointId!,
        '--name',
        `r${seed}`,
      ]);
      assert.equal(job.state, 'done');
      const cloud = await server.cloud();
      for (const [diskName, content] of expected) {
        const disk = job.result.disks.find((d) => d.name === `r${seed}-${diskName}`);
        assert.ok(disk, `restored ${diskName}`);
        assert.ok((await server.diskContent(disk.id)).equals(content), `${diskName} restores bit for bit`);
        await cloud.deleteDisk(disk.id);
      }
      await assertNoLeaks(
        server,
        vm.id,
        vm.disks.map((d) => d.id),
      );
      await collectFaults(server);
    } catch (err) {
      process.stderr.write(`--- server log (seed ${seed}) ---\n${server.log.slice(-6000)}\n`);
      throw err;
    } finally {
      await server.dispose();
    }
  });
}
