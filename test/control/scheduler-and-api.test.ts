import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ComputeManagementClient } from '@azure/arm-compute';
import { emulatorClientOptions, readConnectionInfo } from '../../src/emulator/client.ts';
import { ServerUnderTest, sleep } from '../support/goldsnap-server.ts';
import { type Run, vmSpec } from '../support/end-to-end.ts';

/**
 * The scheduler on its clock, one run per VM at a time, retention per policy, and the API's
 * tokens, roles, validation and self-description, as a user drives them.
 */
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
      'every-3s',
      '--cron',
      '*/3 * * * * *',
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
    await sleep(7_000); // the server is down across at least two occurrences
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
