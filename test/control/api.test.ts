import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';

/**
 * The REST API as clients meet it: strict validation (400 naming the field), token management,
 * the run history's filters and paging, and the audit log, through HTTP and the CLI.
 */

type Run = {
  id: string;
  step: string;
  error?: string;
  vmName: string;
  disks: { diskName: string }[];
  summary: { kind: string; trigger: string; readBytes: number; durationMs: number | null };
};

function smallVm(name: string) {
  return {
    name,
    resourceGroup: 'rg-api',
    region: 'westeurope',
    tags: { team: 'api' },
    disks: [{ name: `${name}-os`, sizeBytes: 2 * MiB, role: 'os', fill: 'random' }],
  };
}

describe('REST API', () => {
  let server: ServerUnderTest;
  before(async () => {
    server = await ServerUnderTest.create({ catalog: 'pglite' });
    await server.start();
  });
  after(async () => server.dispose());

  test('unknown fields and wrong types are refused with 400 naming the field, and change nothing', async () => {
    const created = await server.api('POST', '/api/policies', {
      name: 'strict',
      cron: '0 3 * * *',
      selection: { tags: { team: 'none' } },
      retention: { last: 1 },
    });
    assert.equal(created.status, 201);

    const typo = await server.api('PATCH', '/api/policies/strict', { enabeld: false });
    assert.equal(typo.status, 400);
    assert.equal(typo.body.field, 'enabeld');
    assert.match(typo.body.error, /unknown field body\.enabeld/);

    const wrongType = await server.api('PATCH', '/api/policies/strict', { enabled: 'false' });
    assert.equal(wrongType.status, 400);
    assert.equal(wrongType.body.field, 'enabled');
    assert.match(wrongType.body.error, /body\.enabled must be a boolean/);

    const nested = await server.api('PATCH', '/api/policies/strict', { retention: { lsat: 3 } });
    assert.equal(nested.status, 400);
    assert.equal(nested.body.field, 'retention.lsat');

    const missing = await server.api('POST', '/api/runs', {});
    assert.equal(missing.status, 400);
    assert.equal(missing.body.field, 'vmId');

    const policy = (await server.api('GET', '/api/policies')).body.find((p: { name: string }) => p.name === 'strict');
    assert.equal(policy.enabled, true, 'the refused requests changed nothing');
    assert.deepEqual(policy.retention, { last: 1 });

    assert.equal((await server.api('GET', '/api/runs?limit=many')).body.field, 'limit');
    assert.equal(
      (await server.api('GET', '/api/runs?colour=red', undefined, '')).status,
      401,
      'who asks is checked before what is asked',
    );
    const unknownQuery = await server.api('GET', '/api/runs?colour=red');
    assert.equal(unknownQuery.status, 400);
    assert.equal(unknownQuery.body.field, 'colour');

    const ok = await server.api('PATCH', '/api/policies/strict', { enabled: false });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.enabled, false);
  });

  test('tokens are created, listed and revoked through the CLI; a revoked token stops working', async () => {
    const created = await server.cliJson<{ token: string; info: { id: string; name: string; role: string } }>([
      'tokens',
      'create',
      'ci-reader',
      '--role',
      'viewer',
    ]);
    assert.match(created.token, /^gs_/);
    assert.equal((await server.api('GET', '/api/vms', undefined, created.token)).status, 200);
    assert.equal(
      (await server.api('GET', '/api/tokens', undefined, created.token)).status,
      403,
      'a viewer does not list tokens',
    );

    const list = await server.cliJson<Array<{ name: string; role: string; token?: string }>>(['tokens', 'list']);
    assert.deepEqual(list.map((t) => `${t.name}:${t.role}`).sort(), ['admin:admin', 'ci-reader:viewer']);
    assert.ok(
      list.every((t) => t.token === undefined),
      'secrets are never listed',
    );
    const text = await server.cli(['tokens', 'list']);
    assert.match(text.stdout, /ci-reader\s+viewer/);

    const revoked = await server.cli(['tokens', 'revoke', 'ci-reader']);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /token ci-reader \(viewer, id [0-9a-f]{8}\) revoked/);
    assert.equal((await server.api('GET', '/api/vms', undefined, created.token)).status, 401);

    const last = await server.cli(['tokens', 'revoke', 'admin']);
    assert.equal(last.code, 1);
    assert.match(last.stderr, /last admin token/);
    assert.equal((await server.api('GET', '/api/tokens')).status, 200, 'the admin token still works');
  });

  test('runs are listed with filters and paging, with kind, trigger, duration and bytes', async () => {
    await server.createVm(smallVm('page-a'));
    await server.createVm(smallVm('page-b'));
    const first = await server.cliJson<Run>(['runs', 'start', 'page-a', '--wait']);
    assert.equal(first.step, 'succeeded', first.error);
    const second = await server.cliJson<Run>(['runs', 'start', 'page-a', '--wait']);
    assert.equal(second.step, 'succeeded', second.error);
    await server.cliJson(['policies', 'create', 'pager', '--cron', '0 4 * * *', '--vm', 'page-b', '--keep-last', '3']);
    const [third] = await server.cliJson<Run[]>(['policies', 'run', 'pager', '--wait']);
    assert.equal(third.step, 'succeeded', third.error);

    const page = async (query: string) => {
      const res = await fetch(new URL(`/api/runs?${query}`, server.url), {
        headers: { authorization: `Bearer ${server.adminToken}` },
      });
      assert.equal(res.status, 200, query);
      return {
        runs: (await res.json()) as Run[],
        total: Number(res.headers.get('x-total-count')),
        next: res.headers.get('link'),
      };
    };
    const all = await page('');
    assert.equal(all.total, 3);
    assert.deepEqual(
      all.runs.map((r) => r.vmName),
      ['page-b', 'page-a', 'page-a'],
      'newest first',
    );
    assert.ok(
      all.runs.every((r) => r.summary.durationMs !== null),
      'finished runs say how long they took',
    );
    assert.deepEqual(
      all.runs.map((r) => r.summary.kind),
      ['full', 'incremental', 'full'],
    );
    assert.deepEqual(
      all.runs.map((r) => r.summary.trigger),
      ['policy', 'user', 'user'],
    );
    assert.equal(all.runs[2].summary.readBytes, 2 * MiB, 'the full backup read the whole (random) disk');

    const onePage = await page('limit=1&offset=1');
    assert.equal(onePage.runs.length, 1);
    assert.equal(onePage.total, 3);
    assert.equal(onePage.runs[0].id, all.runs[1].id);
    assert.match(onePage.next ?? '', /offset=2/);
    assert.equal((await page('limit=1&offset=2')).next, null, 'the last page has no next');

    assert.deepEqual(
      (await page('vm=page-a')).runs.map((r) => r.id),
      [second.id, first.id],
    );
    assert.deepEqual(
      (await page('kind=incremental')).runs.map((r) => r.id),
      [second.id],
    );
    assert.deepEqual(
      (await page('kind=full&vm=page-a')).runs.map((r) => r.id),
      [first.id],
    );
    assert.deepEqual(
      (await page('trigger=policy')).runs.map((r) => r.id),
      [third.id],
    );
    assert.deepEqual(
      (await page('policy=pager')).runs.map((r) => r.id),
      [third.id],
    );
    assert.equal((await page('status=failed')).total, 0);
    assert.equal((await page('status=succeeded')).total, 3);
    assert.equal((await page(`since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).total, 0);
    assert.deepEqual(
      (await page('q=page-b')).runs.map((r) => r.id),
      [third.id],
    );

    const cli = await server.cli(['runs', 'list', '--vm', 'page-a', '--limit', '1']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /page-a\s+incremental\s+user\s+succeeded/);
    assert.match(cli.stdout, /1–1 of 2/);
  });

  test('a run is waited on with GET /api/runs/:id?waitMs=: the answer is the step after the one asked about', async () => {
    await server.createVm(smallVm('wait-1'));
    let run = (await server.api('POST', '/api/runs', { vmId: 'wait-1' })).body as Run;
    const steps = [run.step];
    while (run.step !== 'succeeded' && run.step !== 'failed') {
      // A wait far longer than the run: each answer must come from the run moving on.
      const res = await server.api('GET', `/api/runs/${run.id}?waitMs=60000&step=${run.step}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.notEqual(res.body.step, run.step, `answered while the run was still at ${run.step}`);
      run = res.body as Run;
      steps.push(run.step);
    }
    assert.equal(run.step, 'succeeded', `${run.error} (steps: ${steps.join(' → ')})`);
    // A run that has ended is answered as it is, whatever step is asked about.
    const ended = await server.api('GET', `/api/runs/${run.id}?waitMs=60000&step=succeeded`);
    assert.equal(ended.body.step, 'succeeded');
    const bad = await server.api('GET', `/api/runs/${run.id}?waitMs=-5`);
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body), /waitMs/);
  });

  test('back up now: a name two VMs share is refused naming their groups; each id backs up its own VM with the disks it has now', async () => {
    const first = await server.createVm({ ...smallVm('twin'), resourceGroup: 'rg-twin-a' });
    const byName = await server.api('POST', '/api/runs', { vmId: 'twin' });
    assert.equal(byName.status, 202, 'one VM of that name: backed up by name');
    assert.equal((await server.runEnded<Run>(byName.body.id)).step, 'succeeded');
    // The inventory knows the first now; a second VM takes the same name in another group.
    const second = await server.createVm({
      ...smallVm('twin'),
      resourceGroup: 'rg-twin-b',
      disks: [
        { name: 'twin-b-os', sizeBytes: 2 * MiB, role: 'os', fill: 'random' },
        { name: 'twin-b-data', sizeBytes: 1 * MiB, role: 'data', lun: 0, fill: 'random' },
      ],
    });
    const ambiguous = await server.api('POST', '/api/runs', { vmId: 'twin' });
    assert.equal(ambiguous.status, 400);
    assert.match(ambiguous.body.error, /2 VMs are named twin \(in rg-twin-a, rg-twin-b\): give the VM's id/);
    for (const vm of [first, second]) {
      const started = await server.api('POST', '/api/runs', { vmId: vm.id });
      assert.equal(started.status, 202, JSON.stringify(started.body));
      const run = await server.runEnded<Run>(started.body.id);
      assert.equal(run.step, 'succeeded', run.error);
      assert.deepEqual(run.disks.map((d) => d.diskName).sort(), vm.disks.map((d) => d.name).sort());
    }
  });

  test('every change through the API or CLI is in the audit log: who, what, when, from where; admins only', async () => {
    const viewer = await server.cliJson<{ token: string }>(['tokens', 'create', 'auditor-view', '--role', 'viewer']);
    const denied = await server.api('POST', '/api/runs', { vmId: 'page-a' }, viewer.token);
    assert.equal(denied.status, 403);
    assert.equal(
      (await server.api('GET', '/api/audit', undefined, viewer.token)).status,
      403,
      'viewers do not read the audit log',
    );

    const entries = await server.cliJson<
      Array<{
        actor: string | null;
        actorRole: string | null;
        action: string;
        target: string | null;
        status: number;
        ip: string;
        via: string;
        at: string;
        details: Record<string, unknown>;
      }>
    >(['audit', '--limit', '200']);
    const find = (action: string, status: number, actor = 'admin') =>
      entries.find((e) => e.action === action && e.status === status && e.actor === actor);
    const typo = entries.find(
      (e) => e.action === 'PATCH /api/policies/:id' && e.status === 400 && 'enabeld' in e.details,
    );
    assert.ok(typo, 'the refused PATCH is recorded');
    assert.equal(typo.target, 'strict');
    assert.equal(typo.actor, 'admin');
    assert.equal(typo.actorRole, 'admin');
    assert.match(typo.ip, /127\.0\.0\.1/);
    assert.ok(Date.parse(typo.at) > 0);
    const created = entries.find((e) => e.action === 'POST /api/tokens' && e.details.name === 'ci-reader');
    assert.equal(created?.via, 'cli');
    assert.equal(created.status, 201);
    assert.deepEqual(created.details, { name: 'ci-reader', role: 'viewer' });
    assert.ok(find('DELETE /api/tokens/:id', 200), 'the revocation is recorded');
    assert.ok(find('DELETE /api/tokens/:id', 409), 'the refused revocation is recorded');
    assert.ok(find('POST /api/policies/:id/run', 202));
    assert.ok(find('POST /api/runs', 403, 'auditor-view'), 'a change refused for its role is recorded with who tried');
    assert.ok(!entries.some((e) => e.action.startsWith('GET ')), 'reads are not changes');
    assert.ok(!JSON.stringify(entries).includes(viewer.token), 'no token secret is in the log');

    const text = await server.cli(['audit', '--actor', 'auditor-view']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /auditor-view\s+viewer\s+POST \/api\/runs\s+403/);
  });

  test('every list is searched, filtered and paged by the server; a wrong filter is a 400 naming it', async () => {
    const list = async (path: string) => {
      const res = await fetch(new URL(path, server.url), { headers: { authorization: `Bearer ${server.adminToken}` } });
      const body = await res.json();
      return {
        status: res.status,
        body,
        total: Number(res.headers.get('x-total-count')),
        next: res.headers.get('link'),
      };
    };
    const refused = async (path: string, field: string) => {
      const r = await list(path);
      assert.equal(r.status, 400, `${path} is refused`);
      assert.equal(r.body.field, field, `${path} names ${field}`);
    };

    const vms = await list('/api/vms?q=page-a');
    assert.deepEqual(
      vms.body.map((v: { name: string }) => v.name),
      ['page-a'],
    );
    assert.equal(vms.total, 1);
    const firstVm = await list('/api/vms?limit=1');
    assert.equal(firstVm.body.length, 1);
    assert.ok(firstVm.total >= 2);
    assert.match(firstVm.next ?? '', /^<\/api\/vms\?limit=1&offset=1>; rel="next"$/);
    assert.equal((await list('/api/vms?protected=false&q=page-a')).total, 1, 'no policy selects page-a');
    await refused('/api/vms?protected=maybe', 'protected');
    await refused('/api/vms?colour=red', 'colour');

    const policies = await list('/api/policies?q=stri');
    assert.deepEqual(
      policies.body.map((p: { name: string }) => p.name),
      ['strict'],
    );
    await refused('/api/policies?enabled=banana', 'enabled');

    const tokens = await list('/api/tokens?role=viewer&q=auditor');
    assert.deepEqual(
      tokens.body.map((t: { name: string }) => t.name),
      ['auditor-view'],
    );
    assert.equal((await list('/api/tokens?kind=session')).total, 0, 'no console sign-in yet');
    await refused('/api/tokens?role=root', 'role');

    const pageA = vms.body[0].id as string;
    const points = await list('/api/recovery-points?vm=page-a');
    assert.ok(points.total > 0);
    assert.ok(points.body.every((p: { vmId: string }) => p.vmId === pageA));
    assert.equal((await list(`/api/recovery-points?vm=${encodeURIComponent(pageA)}`)).total, points.total);
    assert.equal((await list('/api/recovery-points?vm=page-a&since=2099-01-01T00:00:00Z')).total, 0);
    const onePoint = await list('/api/recovery-points?vm=page-a&limit=1');
    assert.equal(onePoint.body.length, 1);
    assert.equal(onePoint.next !== null, points.total > 1);
    await refused('/api/recovery-points?since=yesterday', 'since');

    const restores = await list('/api/restores?state=done');
    assert.equal(restores.status, 200);
    assert.deepEqual(restores.body, []);
    assert.equal(restores.total, 0);
    await refused('/api/restores?state=bogus', 'state');

    const refusedChanges = await list('/api/audit?outcome=refused&actor=auditor-view');
    assert.ok(refusedChanges.total >= 1);
    assert.ok(
      refusedChanges.body.every(
        (e: { status: number; actor: string }) => e.status >= 400 && e.actor === 'auditor-view',
      ),
    );
    assert.equal((await list('/api/audit?until=2000-01-01T00:00:00Z')).total, 0);
    const aboutStrict = await list('/api/audit?q=strict');
    assert.ok(
      aboutStrict.body.some(
        (e: { action: string; target: string }) => e.action === 'PATCH /api/policies/:id' && e.target === 'strict',
      ),
    );
    await refused('/api/audit?outcome=maybe', 'outcome');
  });

  test('CLI output: plain progress lines to 100% when stderr is not a terminal; policies read as sentences, next run in their zone', async () => {
    await server.createVm({
      ...smallVm('out-1'),
      disks: [{ name: 'out-1-os', sizeBytes: 8 * MiB, role: 'os', fill: 'random' }],
    });
    const r = await server.cli(['runs', 'start', 'out-1', '--wait']);
    assert.equal(r.code, 0, r.stderr);
    const progress = r.stderr.split('\n').filter((l) => l.startsWith('backup '));
    assert.ok(progress.length >= 1, r.stderr);
    assert.match(progress.at(-1)!, /^backup 100% 8\.00 MiB\/8\.00 MiB/, 'the last line says the work finished');
    assert.doesNotMatch(r.stderr, /NFs|LLs|NULL|INF|0 B\/1 B/);
    assert.doesNotMatch(r.stderr, /\[[\u2591\u2588]/, 'no bar drawing in a log');
    assert.match(r.stdout, /out-1-os: 8\.00 MiB, full, read 8\.00 MiB/);

    await server.cliJson([
      'policies',
      'create',
      'paris-nightly',
      '--cron',
      '0 2 * * *',
      '--time-zone',
      'Europe/Paris',
      '--tag',
      'env=prod',
      '--resource-group',
      'rg-api',
      '--keep-last',
      '2',
      '--keep-daily',
      '7',
    ]);
    const list = await server.cli(['policies', 'list']);
    assert.equal(list.code, 0, list.stderr);
    const line = list.stdout.split('\n').find((l) => l.startsWith('paris-nightly'));
    assert.match(
      line ?? '',
      /resource groups rg-api; tags env=prod\s+last 2, 7 daily\s+\d{4}-\d\d-\d\d 02:00 Europe\/Paris/,
    );
    assert.match(list.stdout, /pager .*VMs page-b\s+last 3/);
    assert.match(list.stdout, /strict .*paused/);
  });
});
