import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openCloud } from '../../src/cloud/open-cloud.ts';
import { startEmulator, type Emulator } from '../../src/emulator/emulator.ts';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';
import { PG_UP, SERVER_URL } from './backends.ts';

/**
 * Scaled out: two `goldsnap server` processes on one PostgreSQL catalog, one repository and one
 * cloud (an emulator running apart). Every run must be advanced by one server at a time and
 * committed once, whichever server started it.
 */
const skip = PG_UP ? false : `no PostgreSQL at ${SERVER_URL}`;

let shared: string;
let emulator: Emulator;
let a: ServerUnderTest;
let b: ServerUnderTest;

before(async () => {
  if (skip) return;
  shared = await mkdtemp(join(tmpdir(), 'gs-shared-'));
  emulator = await startEmulator({ dataDir: join(shared, 'emulator'), port: 0 });
  for (let i = 1; i <= 4; i++) {
    await emulator.control.createVm({
      name: `shared-${i}`,
      resourceGroup: 'rg-shared',
      region: i % 2 ? 'westeurope' : 'eastus',
      tags: { group: i <= 2 ? 'a' : 'b' },
      disks: [{ name: `shared-${i}-os`, sizeBytes: 8 * MiB, role: 'os', fill: 'os-like' }],
    });
  }
  a = await ServerUnderTest.create({
    catalog: 'postgres',
    env: {
      GOLDSNAP_EMULATOR: emulator.connectionFile,
      GOLDSNAP_REPOSITORY: join(shared, 'repository'),
      GOLDSNAP_PASSWORD: 'shared passphrase',
    },
  });
  await a.start();
  b = await ServerUnderTest.create({ catalog: 'pglite', env: { ...a.env, DATABASE_URL: a.env.DATABASE_URL } });
  await b.start();
});

after(async () => {
  await b?.dispose();
  await a?.dispose();
  await emulator?.close();
  if (shared) await rm(shared, { recursive: true, force: true });
});

test('two servers on one catalog: each run advanced by one server at a time, committed once', { skip }, async () => {
  const token = a.adminToken; // the first server made it; the second shares the catalog
  const policies = [];
  for (const group of ['a', 'b']) {
    const r = await a.api(
      'POST',
      '/api/policies',
      { name: `shared-${group}`, cron: '0 3 * * *', selection: { tags: { group } }, retention: { last: 5 } },
      token,
    );
    assert.equal(r.status, 201);
    policies.push(r.body.id as string);
  }
  // Each server starts the runs of one policy; both servers' loops then see all four.
  const [fromA, fromB] = await Promise.all([
    a.api('POST', `/api/policies/${policies[0]}/run`, undefined, token),
    b.api('POST', `/api/policies/${policies[1]}/run`, undefined, token),
  ]);
  const runIds = [...fromA.body, ...fromB.body].map((r: { id: string }) => r.id);
  assert.equal(runIds.length, 4);

  const runs = await a.waitFor(
    'all runs to end',
    async () => {
      const list = await Promise.all(
        runIds.map(async (id) => (await a.api('GET', `/api/runs/${id}`, undefined, token)).body),
      );
      return list.every((r) => r.step === 'succeeded' || r.step === 'failed') ? list : undefined;
    },
    120_000,
  );
  for (const run of runs) assert.equal(run.step, 'succeeded', `${run.vmName}: ${run.error}`);

  const logs = a.log + b.log;
  for (const id of runIds) {
    const commits = (logs.match(new RegExp(`run ${id.slice(0, 8)} \\([^)]*\\): commit`, 'g')) ?? []).length;
    assert.equal(commits, 1, `run ${id.slice(0, 8)} is committed exactly once across both servers`);
  }
  const points = (await b.api('GET', '/api/recovery-points', undefined, token)).body as Array<{ runId: string }>;
  assert.deepEqual(points.map((p) => p.runId).sort(), [...runIds].sort(), 'one recovery point per run');

  const cloud = await openCloud({ kind: 'emulator', connectionFile: emulator.connectionFile });
  const snapshots = await cloud.listGoldsnapSnapshots();
  const golden = (await a.api('GET', '/api/golden-snapshots', undefined, token)).body as Array<{ snapshotId: string }>;
  // The VMs can have restore points: one golden restore point per VM, no per-disk snapshot.
  const vmPoints = await cloud.listGoldsnapVmPoints!();
  assert.equal(snapshots.length, 0, 'no per-disk snapshots');
  assert.equal(vmPoints.length, 4, 'one Goldsnap restore point per VM');
  assert.deepEqual(
    vmPoints.flatMap((p) => p.diskPointIds).sort(),
    golden.map((g) => g.snapshotId).sort(),
    "and its disk points are the disks' golden ones",
  );
});
