import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';
import { PG_UP, SERVER_URL } from './backends.ts';

/**
 * The server wakes on the catalog's notifications, not on polling (docs/control-plane.md,
 * "Wake-ups"). Here its safety-net polls are an hour away, so a run can only get through its
 * steps if the notifications wake the proxy launcher and the orchestrator at every turn.
 */
const HOUR = '3600000';

async function serverWithoutPolls(catalog: 'pglite' | 'postgres') {
  const server = await ServerUnderTest.create({
    catalog,
    env: { GOLDSNAP_ORCHESTRATOR_POLL_MS: HOUR, GOLDSNAP_LAUNCHER_POLL_MS: HOUR },
  });
  await server.start();
  const vm = await server.createVm({
    name: `woken-${catalog}`,
    resourceGroup: 'rg-woken',
    region: 'westeurope',
    disks: [
      { name: `woken-${catalog}-os`, sizeBytes: 8 * MiB, role: 'os', fill: 'os-like' },
      { name: `woken-${catalog}-data`, sizeBytes: 4 * MiB, role: 'data', fill: 'random' },
    ],
  });
  return { server, vm };
}

async function runEnds(server: ServerUnderTest, find: () => Promise<{ id: string } | undefined>) {
  const { id } = await server.waitFor('the run to be created', find);
  return server.waitFor('the run to end', async () => {
    const run = (await server.api('GET', `/api/runs/${id}`, undefined, server.adminToken)).body;
    return run.step === 'succeeded' || run.step === 'failed' ? run : undefined;
  });
}

test('[pglite] polls an hour away: a run started through the API is carried to its end by notifications', async () => {
  const { server, vm } = await serverWithoutPolls('pglite');
  try {
    const started = await server.api('POST', '/api/runs', { vmId: vm.id }, server.adminToken);
    assert.equal(started.status, 202);
    // Its transfers were queued after the launcher's one look at start: only their notification starts a proxy.
    const run = await runEnds(server, async () => started.body);
    assert.equal(run.step, 'succeeded', run.error);
    assert.ok(run.recoveryPointId);
  } finally {
    await server.dispose();
  }
});

test('[postgres] polls an hour away: a policy fire queued by another process is taken up and run to its end', {
  skip: PG_UP ? false : `no PostgreSQL at ${SERVER_URL}`,
}, async () => {
  const { server, vm } = await serverWithoutPolls('postgres');
  try {
    const token = server.adminToken;
    const policy = await server.api(
      'POST',
      '/api/policies',
      { name: 'woken', cron: '0 3 * * *', selection: { resourceGroups: ['rg-woken'] }, retention: { last: 3 } },
      token,
    );
    assert.equal(policy.status, 201);
    // As another server's scheduler would: the fire is written by another connection, in a transaction.
    const other = new pg.Client({ connectionString: server.env.DATABASE_URL });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(
        `INSERT INTO jobs (queue, kind, payload, dedupe_key) VALUES ('orchestrator', 'policy-fire', $1, $2)`,
        [
          JSON.stringify({ policyId: policy.body.id, scheduledFor: '2026-01-01T03:00:00.000Z' }),
          `fire:${policy.body.id}:woken`,
        ],
      );
      await other.query('COMMIT');
    } finally {
      await other.end();
    }
    const run = await runEnds(server, async () => {
      const runs = (await server.api('GET', `/api/runs?vm=${encodeURIComponent(vm.id)}`, undefined, token)).body;
      return runs[0];
    });
    assert.equal(run.step, 'succeeded', run.error);
    assert.equal(run.policyId, policy.body.id);
    assert.equal(run.scheduledFor, '2026-01-01T03:00:00.000Z');
  } finally {
    await server.dispose();
  }
});
