import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertRestoresTo, type Run } from '../support/end-to-end.ts';
import { MiB, ServerUnderTest, sleep } from '../support/goldsnap-server.ts';

/**
 * A data proxy serves several jobs at once (`--proxy-jobs`), and an idle one waits in a long poll
 * rather than polling (docs/control-plane.md, "Data proxies").
 */

type Proxies = {
  proxies: Array<{ region: string; pid: number }>;
  claims: { requests: number; waiting: number };
};

async function contentOf(server: ServerUnderTest, vm: { disks: Array<{ id: string; name: string }> }) {
  return new Map(await Promise.all(vm.disks.map(async (d) => [d.name, await server.diskContent(d.id)] as const)));
}

/** The proxy's log lines of one run's transfers, in the order the proxy wrote them. */
function transferLines(log: string, runId: string): string[] {
  const run = runId.slice(0, 8);
  return log
    .split('\n')
    .filter((l) => l.includes(`of run ${run}`))
    .map((l) => l.replace(/^.*?: (transfer \S+ of run \w+)( done)?.*$/, '$1$2'));
}

/** A VM in westeurope with an OS disk and a data disk of `size` bytes each. */
function twoDiskVm(name: string, size: number) {
  return {
    name,
    resourceGroup: 'rg-jobs',
    region: 'westeurope',
    disks: [
      { name: `${name}-os`, sizeBytes: size, role: 'os', fill: 'os-like' },
      { name: `${name}-data`, sizeBytes: size, role: 'data', lun: 0, fill: 'random' },
    ],
  };
}

test('a proxy with --proxy-jobs 2 transfers both disks of a VM at once; both recovery points restore bit for bit', async () => {
  const server = await ServerUnderTest.create({ catalog: 'pglite' });
  // The read limit makes each transfer last seconds, so the second claim is sure to come while
  // the first transfer still runs; what is checked is the order of the proxy's log lines.
  await server.start(['--proxy-jobs', '2', '--bandwidth', '4MiB']);
  try {
    const vm = await server.createVm(twoDiskVm('two-at-once', 12 * MiB));
    const points: Array<{ id: string; content: Map<string, Buffer> }> = [];
    for (const label of ['full', 'incremental']) {
      if (label === 'incremental')
        await server.writeToVm(vm.name, [
          { diskName: 'two-at-once-os', offset: 3 * MiB, length: 2 * MiB, pattern: 'random' },
          { diskName: 'two-at-once-data', offset: 5 * MiB, length: 1 * MiB, pattern: 'random' },
        ]);
      const content = await contentOf(server, vm);
      const started = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;
      const run = await server.runEnded<Run>(started.id);
      assert.equal(run.step, 'succeeded', run.error);
      assert.equal(run.disks.length, 2);
      if (label === 'incremental')
        assert.ok(
          run.disks.every((d) => d.incremental),
          'both disks were incremental',
        );
      // Both transfers began before either ended: they ran at once, in one proxy.
      await server.waitFor('both transfers to be logged as done', async () =>
        transferLines(server.log, run.id).filter((l) => l.endsWith(' done')).length === 2 ? true : undefined,
      );
      const lines = transferLines(server.log, run.id);
      assert.equal(lines.length, 4, lines.join('\n'));
      assert.ok(
        !lines[0].endsWith(' done') && !lines[1].endsWith(' done'),
        `both transfers started before one ended:\n${lines.join('\n')}`,
      );
      points.push({ id: run.recoveryPointId!, content });
    }
    const { proxies } = (await server.api('GET', '/api/proxies')).body as Proxies;
    assert.equal(proxies.length, 1, 'one proxy served the region');
    assert.match(server.log, /serving westeurope, up to 2 jobs at once/);
    for (const [i, point] of points.entries()) await assertRestoresTo(server, point.id, `jobs-${i}`, point.content);
  } finally {
    await server.dispose();
  }
});

test('an idle proxy waits in one long poll: a job queued meanwhile is claimed at once, with no polling', async () => {
  const HOUR = '3600000';
  // Every safety net is an hour away: the held claim, its re-check, the launcher's and the
  // orchestrator's polls. Only the catalog's notification can hand the proxy the second run's jobs.
  const server = await ServerUnderTest.create({
    catalog: 'pglite',
    env: {
      GOLDSNAP_PROXY_CLAIM_WAIT_MS: HOUR,
      GOLDSNAP_PROXY_CLAIM_RECHECK_MS: HOUR,
      GOLDSNAP_LAUNCHER_POLL_MS: HOUR,
      GOLDSNAP_ORCHESTRATOR_POLL_MS: HOUR,
    },
  });
  await server.start(['--proxy-idle', '3600', '--proxy-jobs', '2']);
  try {
    const vm = await server.createVm(twoDiskVm('long-poll', 4 * MiB));
    const backup = async () => {
      const started = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;
      const run = await server.runEnded<Run>(started.id);
      assert.equal(run.step, 'succeeded', run.error);
    };
    await backup();
    const first = await server.waitFor('the idle proxy to hold a claim', async () => {
      const p = (await server.api('GET', '/api/proxies')).body as Proxies;
      return p.claims.waiting === 1 ? p : undefined;
    });
    assert.equal(first.proxies.length, 1);
    // Idle for a while: a proxy polling every 250 ms would ask about eight times here.
    await sleep(2000);
    await server.writeToVm(vm.name, [{ diskName: 'long-poll-os', offset: MiB, length: MiB, pattern: 'random' }]);
    await backup();
    const second = (await server.api('GET', '/api/proxies')).body as Proxies;
    assert.deepEqual(
      second.proxies.map((p) => p.pid),
      first.proxies.map((p) => p.pid),
      'the same proxy served both runs',
    );
    // The held claim takes the first job, one more takes the second, and one is held again.
    const asked = second.claims.requests - first.claims.requests;
    assert.ok(asked <= 3, `the idle proxy asked ${asked} times for two jobs`);
  } finally {
    await server.dispose();
  }
});
