import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';

/** What monitoring sees: Prometheus metrics at /metrics, and the server's JSON log lines. */
describe('metrics and structured logs', () => {
  let server: ServerUnderTest;
  before(async () => {
    server = await ServerUnderTest.create({ catalog: 'pglite' });
    await server.start(['--log-format', 'json']);
  });
  after(async () => server.dispose());

  const scrape = async (token?: string) => {
    const res = await fetch(new URL('/metrics', server.url), {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
  };
  const value = (text: string, series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  test('/metrics counts runs by result, durations, bytes read and stored, VMs, queues and repository size', async () => {
    assert.equal((await scrape()).status, 401, 'metrics need a token');
    const viewer = await server.cliJson<{ token: string }>(['tokens', 'create', 'prometheus', '--role', 'viewer']);
    // A scrape before the first backup: the repository's size it lists then must not outlive the run.
    assert.ok(value((await scrape(viewer.token)).text, 'goldsnap_repository_bytes')! < MiB);
    await server.createVm({
      name: 'metered',
      resourceGroup: 'rg-m',
      region: 'westeurope',
      tags: {},
      disks: [{ name: 'metered-os', sizeBytes: 4 * MiB, role: 'os', fill: 'random' }],
    });
    const run = await server.cliJson<{ step: string; error?: string }>(['runs', 'start', 'metered', '--wait']);
    assert.equal(run.step, 'succeeded', run.error);

    const m = await scrape(viewer.token);
    assert.equal(m.status, 200);
    assert.match(m.type ?? '', /^text\/plain; version=0\.0\.4/);
    assert.equal(value(m.text, 'goldsnap_runs_total{result="succeeded"}'), 1);
    assert.equal(value(m.text, 'goldsnap_runs_total{result="failed"}'), 0);
    assert.equal(value(m.text, 'goldsnap_runs_running'), 0);
    assert.ok(value(m.text, 'goldsnap_run_duration_seconds_total')! > 0);
    assert.equal(value(m.text, 'goldsnap_backup_read_bytes_total'), 4 * MiB);
    assert.ok(value(m.text, 'goldsnap_backup_stored_bytes_total')! >= 4 * MiB, 'random data does not compress');
    assert.equal(value(m.text, 'goldsnap_vms{protected="false"}'), 1);
    assert.equal(value(m.text, 'goldsnap_recovery_points'), 1);
    assert.ok(value(m.text, 'goldsnap_repository_bytes')! > 4 * MiB);
    assert.match(m.text, /^# TYPE goldsnap_proxies gauge$/m);
    assert.match(m.text, /^# TYPE goldsnap_queue_jobs gauge$/m);
    assert.match(m.text, /^goldsnap_process_resident_memory_bytes \d+/m);
  });

  test('the server logs one JSON object a line, API requests included, with no token in it', async () => {
    await server.api('GET', '/api/vms');
    const lines = server.log.split('\n').filter((l) => l.trim());
    const entries = lines.map((l) => {
      try {
        return JSON.parse(l) as {
          level: number;
          time: string;
          msg: string;
          req?: { method: string; url: string };
          res?: { statusCode: number };
        };
      } catch {
        throw new Error(`not a JSON log line: ${l}`);
      }
    });
    assert.ok(entries.every((e) => typeof e.level === 'number' && Date.parse(e.time) > 0 && typeof e.msg === 'string'));
    assert.ok(entries.some((e) => /listening on http/.test(e.msg)));
    assert.ok(
      entries.some((e) => e.req?.method === 'GET' && e.req.url === '/api/vms'),
      'requests are logged',
    );
    assert.ok(entries.some((e) => e.res?.statusCode === 200));
    assert.ok(!server.log.includes(server.adminToken), 'no token secret in the log');
    assert.doesNotMatch(server.log, /Bearer /);
  });
});
