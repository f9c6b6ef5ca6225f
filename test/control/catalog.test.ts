import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { openDatabase, redactUrl } from '../../src/control/catalog/database.ts';
import { migrate, migrations } from '../../src/control/catalog/migrations.ts';
import {
  InvalidInputError,
  PolicyStore,
  matchesSelection,
  type PolicyInput,
} from '../../src/control/catalog/policies.ts';
import { SqlRunStore } from '../../src/control/catalog/run-store.ts';
import { TokenStore } from '../../src/control/catalog/tokens.ts';
import type { Run } from '../../src/control/orchestrator/run-model.ts';
import type { RecoveryPoint } from '../../src/repository/recovery-point.ts';
import { forEachBackend, freshPGliteDataDir } from './backends.ts';

const policyInput = (over: Partial<PolicyInput> = {}): PolicyInput => ({
  name: 'nightly',
  cron: '0 2 * * *',
  timeZone: 'Europe/Paris',
  selection: { tags: { backup: 'nightly' } },
  retention: { daily: 7, weekly: 4 },
  ...over,
});

function newRun(over: Partial<Run> & { scheduledFor?: string } = {}): Run & { scheduledFor?: string } {
  return {
    id: randomUUID(),
    vmId: 'vm-1',
    vmName: 'web',
    step: 'snapshot',
    createdAt: new Date().toISOString(),
    disks: [
      {
        diskId: 'd-os',
        diskName: 'os',
        region: 'westeurope',
        sizeBytes: 1 << 20,
        role: 'os',
        bytesDone: 0,
        bytesTotal: 0,
        transferred: false,
      },
      {
        diskId: 'd-data',
        diskName: 'data0',
        region: 'westeurope',
        sizeBytes: 1 << 20,
        role: 'data',
        lun: 0,
        bytesDone: 0,
        bytesTotal: 0,
        transferred: false,
      },
    ],
    ...over,
  };
}

test('redactUrl hides the password', () => {
  assert.equal(redactUrl('postgres://goldsnap:s3cret@db:5432/goldsnap'), 'postgres://goldsnap:***@db:5432/goldsnap');
  assert.equal(redactUrl('postgres://db/goldsnap'), 'postgres://db/goldsnap');
});

test('a wrong server URL fails with a message that does not contain the password', async () => {
  await assert.rejects(openDatabase({ databaseUrl: 'postgres://u:topsecret@127.0.0.1:1/x' }), (err: Error) => {
    assert.match(err.message, /cannot connect to PostgreSQL at postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/x/);
    assert.doesNotMatch(err.message, /topsecret/);
    return true;
  });
});

test('the embedded catalog persists in <dataDir>/catalog', async () => {
  const dir = await freshPGliteDataDir();
  try {
    let db = await openDatabase({ dataDir: dir });
    assert.equal(db.kind, 'pglite');
    await migrate(db);
    await new PolicyStore(db).create(policyInput());
    await db.close();
    db = await openDatabase({ dataDir: dir });
    assert.deepEqual(await migrate(db), []);
    assert.equal((await new PolicyStore(db).list()).length, 1);
    // Opened with a smaller buffer pool than initdb's 128 MB, and PGlite's own start settings kept.
    const setting = async (name: string) => (await db.query<Record<string, string>>(`SHOW ${name}`))[0][name];
    assert.equal(await setting('shared_buffers'), '32MB');
    assert.equal(await setting('search_path'), 'public');
    assert.equal(await setting('max_worker_processes'), '0');
    await db.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

forEachBackend(
  'migrations',
  (b) => {
    test('apply once, then are a no-op', async () => {
      assert.deepEqual(
        await migrate(b.db),
        migrations.map((m) => m.version),
      );
      assert.deepEqual(await migrate(b.db), []);
      const rows = await b.db.query<{ version: number }>('SELECT version FROM schema_migrations');
      assert.equal(rows.length, migrations.length);
    });

    test('two servers migrating at once do not race', async () => {
      const other = await b.openAnother();
      const extra = [
        ...migrations,
        {
          version: 1000,
          name: 'test table',
          sql: 'CREATE TABLE race_probe (id int); CREATE INDEX race_probe_i ON race_probe (id);',
        },
      ];
      const before = (
        await b.db.query<{ version: number }>('SELECT version FROM schema_migrations').catch(() => [])
      ).map((r) => r.version);
      const pending = extra.map((m) => m.version).filter((v) => !before.includes(v));
      const [x, y] = await Promise.all([migrate(b.db, extra), migrate(other, extra)]);
      // One applied every pending migration, the other found nothing left to do.
      assert.deepEqual(
        [x, y].sort((p, q) => p.length - q.length),
        [[], pending],
      );
      const rows = await b.db.query('SELECT version FROM schema_migrations');
      assert.equal(rows.length, migrations.length + 1);
    });
  },
  { migrated: false },
);

forEachBackend('catalog', (b) => {
  test('policies: create, get, list, update, delete', async () => {
    const store = new PolicyStore(b.db);
    const p = await store.create(policyInput());
    assert.equal(p.timeZone, 'Europe/Paris');
    assert.equal(p.enabled, true);
    assert.deepEqual(p.retention, { daily: 7, weekly: 4 });
    assert.deepEqual(await store.get(p.id), p);
    assert.deepEqual((await store.getByName('nightly'))?.id, p.id);
    const q = await store.create(
      policyInput({ name: 'hourly', cron: '0 * * * *', timeZone: undefined, selection: { vmIds: ['vm-1'] } }),
    );
    assert.equal(q.timeZone, 'UTC');
    assert.deepEqual(
      (await store.list()).map((x) => x.name),
      ['hourly', 'nightly'],
    );
    const u = await store.update(p.id, { enabled: false, cron: '30 3 * * 1-5' });
    assert.equal(u.enabled, false);
    assert.equal(u.cron, '30 3 * * 1-5');
    assert.equal(u.name, 'nightly');
    assert.ok(u.updatedAt >= p.updatedAt);
    assert.deepEqual(
      (await store.list({ enabled: true })).map((x) => x.name),
      ['hourly'],
    );
    await assert.rejects(
      store.update(p.id, { name: 'hourly' }),
      (e: InvalidInputError) => e instanceof InvalidInputError && e.field === 'name',
    );
    await assert.rejects(store.update(randomUUID(), { enabled: true }), /not found/);
    assert.equal(await store.delete(p.id), true);
    assert.equal(await store.delete(p.id), false);
    assert.equal(await store.get(p.id), undefined);
  });

  test('policies: invalid input names the field', async () => {
    const store = new PolicyStore(b.db);
    const cases: [Partial<PolicyInput> | Record<string, unknown>, string, RegExp][] = [
      [{ cron: 'every night' }, 'cron', /invalid cron/],
      [{ cron: '0 0 30 2 *' }, 'cron', /never fires/],
      [{ cron: '' }, 'cron', /cron expression/],
      [{ timeZone: 'Mars/Olympus_Mons' }, 'timeZone', /unknown time zone/],
      [{ selection: {} }, 'selection', /selects nothing/],
      [{ selection: { vmIds: [], tags: {} } }, 'selection', /selects nothing/],
      [{ selection: { vmIds: 'vm-1' } as any }, 'selection.vmIds', /list/],
      [{ selection: { tags: { a: 1 } } as any }, 'selection.tags', /string/],
      [{ selection: { owner: 'me' } as any }, 'selection.owner', /unknown/],
      [{ retention: { daily: -1 } }, 'retention.daily', /whole number/],
      [{ retention: { daily: 1.5 } }, 'retention.daily', /whole number/],
      [{ retention: { last: 0, daily: 0 } }, 'retention', /keeps nothing/],
      [{ retention: {} }, 'retention', /keeps nothing/],
      [{ retention: { forever: 1 } as any }, 'retention.forever', /unknown rule/],
      [{ name: '  ' }, 'name', /non-empty/],
      [{ enabled: 'yes' as any }, 'enabled', /true or false/],
    ];
    for (const [over, field, message] of cases) {
      await assert.rejects(store.create(policyInput(over as Partial<PolicyInput>)), (e: Error) => {
        assert.ok(e instanceof InvalidInputError, `${JSON.stringify(over)}: ${e}`);
        assert.equal(e.field, field, JSON.stringify(over));
        assert.match(e.message, message);
        assert.ok(e.message.startsWith(`${field}: `));
        return true;
      });
    }
    await store.create(policyInput());
    await assert.rejects(store.create(policyInput()), /name: a policy named "nightly" already exists/);
    assert.equal((await store.list()).length, 1);
  });

  test('selection matching', () => {
    const vm = { id: '/sub/rg/VM1', resourceGroup: 'Prod-RG', tags: { env: 'prod', backup: 'yes' } };
    assert.ok(matchesSelection({ vmIds: ['/sub/rg/vm1'] }, vm));
    assert.ok(matchesSelection({ resourceGroups: ['prod-rg'] }, vm));
    assert.ok(matchesSelection({ tags: { env: 'prod' }, resourceGroups: ['prod-rg'] }, vm));
    assert.ok(!matchesSelection({ tags: { env: 'dev' }, resourceGroups: ['prod-rg'] }, vm));
    assert.ok(!matchesSelection({ vmIds: ['other'] }, vm));
    // A restored VM's tags are its source's: they do not select it, its group or id may.
    const restored = { ...vm, tags: { ...vm.tags, goldsnapRestore: 'r1' } };
    assert.ok(!matchesSelection({ tags: { env: 'prod' } }, restored));
    assert.ok(matchesSelection({ resourceGroups: ['prod-rg'] }, restored));
    assert.ok(matchesSelection({ vmIds: ['/sub/rg/vm1'] }, restored));
  });

  test('run store: runs round trip, createRun idempotency, active runs', async () => {
    const store = new SqlRunStore(b.db);
    const policy = await new PolicyStore(b.db).create(policyInput());
    const scheduledFor = '2025-06-01T00:00:00.000Z';
    const first = newRun({ policyId: policy.id, scheduledFor });
    const created = await store.createRun(first);
    assert.equal(created.id, first.id);
    // Another scheduler (or a retried job) creating the run for the same occurrence gets the first one.
    const again = await store.createRun(newRun({ policyId: policy.id, scheduledFor: '2025-06-01T02:00:00+02:00' }));
    assert.equal(again.id, first.id);
    assert.equal((await store.listRuns()).length, 1);
    // Same id again: also the existing run.
    assert.equal((await store.createRun(first)).id, first.id);
    // A VM has one unfinished run at most: a manual run while another is going gets that one.
    assert.equal((await store.createRun(newRun())).id, first.id);
    // Runs of other VMs are their own.
    const m1 = await store.createRun(newRun({ vmId: 'vm-3' }));
    const m2 = await store.createRun(newRun({ vmId: 'vm-4' }));
    assert.notEqual(m1.id, m2.id);

    const run = await store.getRun(first.id);
    assert.deepEqual(run, JSON.parse(JSON.stringify(first)));
    run.step = 'transfer';
    run.disks[0]!.snapshotId = 'snap-1';
    await store.saveRun(run);
    assert.equal((await store.getRun(run.id)).disks[0]!.snapshotId, 'snap-1');
    await assert.rejects(store.getRun(randomUUID()), /not found/);

    assert.equal((await store.listRuns({ active: true })).length, 3);
    run.step = 'succeeded';
    run.finishedAt = new Date().toISOString();
    await store.saveRun(run);
    assert.equal((await store.listRuns({ active: true })).length, 2);
    assert.deepEqual(
      (await store.listRuns({ active: false })).map((r) => r.id),
      [run.id],
    );
    assert.equal((await store.listRuns({ vmId: 'vm-2' })).length, 0);
    assert.equal((await store.listRuns({ limit: 1 })).length, 1);
    assert.equal((await store.listRuns({ policyId: policy.id })).length, 1);
    assert.equal(await store.activeRunForVm('vm-1'), undefined);
    const next = await store.createRun(newRun());
    assert.notEqual(next.id, first.id, 'once the run finished, the VM gets a new one');
    assert.equal((await store.activeRunForVm('vm-1'))?.id, next.id);
    assert.equal((await store.activeRunForVm('vm-3'))?.id, m1.id);
    assert.equal(await store.activeRunForVm('vm-2'), undefined);

    assert.deepEqual(await store.retentionOf(run), { policy: { daily: 7, weekly: 4 }, timeZone: 'Europe/Paris' });
    assert.equal(await store.retentionOf(m1), undefined);
  });

  test('run store: golden, recovery points, transfers, inventory', async () => {
    const store = new SqlRunStore(b.db);
    assert.equal(await store.getGolden('d-os'), undefined);
    await store.setGolden({ diskId: 'd-os', snapshotId: 's1', fixedIndex: 'f1', recoveryPointId: 'rp1' });
    await store.setGolden({ diskId: 'd-os', snapshotId: 's2', fixedIndex: 'f2', recoveryPointId: 'rp2' });
    await store.setGolden({ diskId: 'd-data', snapshotId: 's3', fixedIndex: 'f3', recoveryPointId: 'rp2' });
    assert.deepEqual(await store.getGolden('d-os'), {
      diskId: 'd-os',
      snapshotId: 's2',
      fixedIndex: 'f2',
      recoveryPointId: 'rp2',
    });
    assert.deepEqual(
      (await store.listGolden()).map((g) => g.diskId),
      ['d-data', 'd-os'],
    );

    const point: RecoveryPoint = {
      version: 1,
      time: '2025-06-01T00:00:05.000Z',
      source: 'vm:vm-1',
      hostname: 'h',
      tags: ['run:r1'],
      disks: [],
    };
    await store.recordRecoveryPoint({ id: 'rp1', vmId: 'vm-1', runId: 'r1', time: point.time, point });
    await store.recordRecoveryPoint({ id: 'rp1', vmId: 'vm-1', runId: 'r1', time: point.time, point }); // idempotent
    await store.recordRecoveryPoint({
      id: 'rp2',
      vmId: 'vm-1',
      runId: 'r2',
      time: '2025-06-02T00:00:05.000Z',
      point: { ...point, time: '2025-06-02T00:00:05.000Z' },
    });
    await store.recordRecoveryPoint({ id: 'rp3', vmId: 'vm-2', runId: 'r3', time: '2025-06-03T00:00:05.000Z', point });
    assert.deepEqual(
      (await store.listRecoveryPoints({ vmId: 'vm-1' })).map((e) => e.id),
      ['rp2', 'rp1'],
    );
    assert.deepEqual(
      (await store.listRecoveryPoints()).map((e) => e.id),
      ['rp3', 'rp2', 'rp1'],
    );
    assert.deepEqual((await store.getRecoveryPoint('rp1'))?.point, point);
    await store.forgetRecoveryPoint('rp1');
    await store.forgetRecoveryPoint('rp1');
    assert.deepEqual(
      (await store.listRecoveryPoints({ vmId: 'vm-1' })).map((e) => e.id),
      ['rp2'],
    );

    const run = newRun();
    await store.enqueueTransfer(run.id, run.disks[0]!);
    await store.enqueueTransfer(run.id, run.disks[0]!);
    await store.enqueueTransfer(run.id, run.disks[1]!);
    const jobs = await store.jobsOfRun(run.id);
    assert.equal(jobs.length, 2);
    assert.deepEqual(
      jobs.map((j) => [j.queue, j.kind, j.kind === 'transfer' && j.payload.diskId, j.dedupeKey]),
      [
        ['transfer:westeurope', 'transfer', 'd-os', `transfer:${run.id}:d-os`],
        ['transfer:westeurope', 'transfer', 'd-data', `transfer:${run.id}:d-data`],
      ],
    );

    const vm = {
      id: 'vm-1',
      name: 'web',
      region: 'westeurope',
      resourceGroup: 'rg',
      tags: { env: 'prod' },
      disks: [{ id: 'd-os', name: 'os', region: 'westeurope', sizeBytes: 1024, role: 'os' as const }],
    };
    await store.upsertVms([vm, { ...vm, id: 'vm-0', name: 'db' }], new Date('2025-01-01T00:00:00Z'));
    await store.upsertVms([{ ...vm, tags: { env: 'staging' } }]);
    const vms = await store.listVms();
    assert.deepEqual(
      vms.map((v) => v.name),
      ['db', 'web'],
    );
    assert.deepEqual(vms[1]!.tags, { env: 'staging' });
    assert.deepEqual(vms[1]!.disks, vm.disks);
    assert.equal(await store.forgetVmsNotSeenSince(new Date('2025-06-01T00:00:00Z')), 1);
    assert.deepEqual(
      (await store.listVms()).map((v) => v.id),
      ['vm-1'],
    );
  });

  test('api tokens: stored hashed, verified, revoked', async () => {
    const tokens = new TokenStore(b.db);
    const { token, info } = await tokens.create('ci', 'operator');
    assert.match(token, /^gs_/);
    assert.deepEqual(await tokens.verify(token), info);
    assert.equal(await tokens.verify(`${token}x`), undefined);
    const rows = await b.db.query<{ token_hash: string }>('SELECT token_hash FROM api_tokens');
    assert.ok(!JSON.stringify(rows).includes(token));
    await assert.rejects(tokens.create('x', 'root' as any), (e: InvalidInputError) => e.field === 'role');
    assert.equal(await tokens.count(), 1);
    assert.equal(await tokens.revoke(info.id), true);
    assert.equal(await tokens.verify(token), undefined);
    assert.deepEqual(await tokens.list(), []);
  });

  test('transactions roll back on error', async () => {
    await assert.rejects(
      b.db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO golden (disk_id, snapshot_id, fixed_index, recovery_point_id) VALUES ('x', 's', 'f', 'r')`,
        );
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal((await b.db.query('SELECT * FROM golden')).length, 0);
    // The database is still usable.
    const [row] = await b.db.transaction((tx) => tx.query<{ n: number }>('SELECT 1 AS n'));
    assert.equal(row!.n, 1);
  });
});
