import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ContainerInstanceManagementClient, type ContainerGroup } from '@azure/arm-containerinstance';
import { emulatorClientOptions, readConnectionInfo } from '../../src/emulator/client.ts';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';

/**
 * The server with `--proxy-launcher aci` against the emulator: each region's data proxy is a
 * container group in that region (a real `goldsnap proxy` process), deleted once the region is
 * idle, and deleted at the next start if a crash left it behind. Proxy credentials are per region.
 */

type Run = {
  id: string;
  step: string;
  error?: string;
  recoveryPointId?: string;
  warnings?: string[];
  crossRegion?: { transfers: number };
  disks: Array<{ diskName: string; proxyRegion?: string }>;
};

function vmSpec(name: string, region = 'westeurope') {
  return {
    name,
    resourceGroup: 'rg-aci',
    region,
    disks: [
      { name: `${name}-os`, sizeBytes: 16 * MiB, role: 'os', fill: 'os-like' },
      { name: `${name}-data`, sizeBytes: 8 * MiB, role: 'data', lun: 0, fill: 'random' },
    ],
  };
}

describe('data proxies in Azure Container Instances (emulated)', () => {
  let server: ServerUnderTest;
  const LEGACY = 'legacy-shared-proxy-secret-for-the-test';
  before(async () => {
    server = await ServerUnderTest.create({
      catalog: 'pglite',
      env: {
        GOLDSNAP_PROXY_LAUNCHER: 'aci',
        GOLDSNAP_ACI_POLL_MS: '200',
        GOLDSNAP_ACI_CPU: '1',
        GOLDSNAP_ACI_MEMORY_GB: '1',
        GOLDSNAP_PROXY_TOKEN: LEGACY,
      },
    });
    await server.start(['--bandwidth', '4MiB']);
  });
  after(async () => server.dispose());

  /** The emulator's ARM, as the SDK sees it (its port changes at each server start). */
  function aci(): ContainerInstanceManagementClient {
    const o = emulatorClientOptions(readConnectionInfo(join(server.dataDir, 'emulator')));
    return new ContainerInstanceManagementClient(o.credential, o.subscriptionId, o.compute);
  }
  const getGroup = (region: string) =>
    aci()
      .containerGroups.get('goldsnap-proxies', `goldsnap-proxy-${region}`)
      .catch((err: { statusCode?: number }) => {
        if (err.statusCode === 404) return undefined;
        throw err;
      });
  const runOf = async (id: string) => (await server.api('GET', `/api/runs/${id}`)).body as Run;
  const finished = (id: string) => server.runEnded<Run>(id);

  test("a backup and a restore run in container groups of the disks' regions, deleted when idle", async () => {
    const vm = await server.createVm(vmSpec('aci-1'));
    const content = new Map(
      await Promise.all(vm.disks.map(async (d) => [d.name, await server.diskContent(d.id)] as const)),
    );
    const started = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;

    // While the run transfers, its region's proxy is a running container group in that region.
    const group: ContainerGroup = await server.waitFor('the proxy container group', async () => {
      const g = await getGroup('westeurope');
      return g?.instanceView?.state === 'Running' ? g : undefined;
    });
    assert.notEqual((await runOf(started.id)).step, 'succeeded', 'the group exists while the run works');
    assert.equal(group.location, 'westeurope');
    assert.equal(group.tags?.goldsnap, 'true');
    assert.equal(group.tags?.goldsnapProxy, 'westeurope');
    assert.deepEqual(group.containers[0].resources.requests, { cpu: 1, memoryInGB: 1 });
    const env = new Map(group.containers[0].environmentVariables!.map((v) => [v.name, v]));
    for (const secret of ['GOLDSNAP_SERVER_URL', 'GOLDSNAP_PROXY_TOKEN', 'GOLDSNAP_REPOSITORY', 'GOLDSNAP_PASSWORD']) {
      assert.ok(env.has(secret), `${secret} is given to the container`);
      assert.equal(env.get(secret)!.value, undefined, `${secret} is a secure value, not shown`);
    }
    assert.notEqual(env.get('GOLDSNAP_PROXY_TOKEN')?.secureValue, LEGACY);
    const listed = (await server.api('GET', '/api/proxies')).body as {
      proxies: Array<{ region: string; containerGroup?: string }>;
    };
    assert.deepEqual(
      listed.proxies.map((p) => [p.region, p.containerGroup]),
      [['westeurope', 'goldsnap-proxy-westeurope']],
    );
    const creds = (await server.api('GET', '/api/proxy-credentials')).body as Array<{
      region: string;
      issuedBy: string;
    }>;
    assert.deepEqual(
      creds.map((c) => c.region),
      ['westeurope'],
      'the container holds a credential for its region only',
    );

    const done = await finished(started.id);
    assert.equal(done.step, 'succeeded', done.error);
    assert.ok(
      done.disks.every((d) => d.proxyRegion === 'westeurope'),
      'each transfer records the region its proxy ran in',
    );
    assert.equal(done.warnings, undefined, "no cross-region warning: the proxy ran in the disks' region");

    // Idle for --proxy-idle (3 s): the group is deleted and its credential revoked.
    const deleted =
      /proxy for westeurope \(container group goldsnap-proxy-westeurope\) ended: (idle for 3 s|container Terminated, exit 0 \(Completed\)); deleted/;
    await server.waitFor('the launcher to delete the idle group', async () =>
      deleted.test(server.log) ? true : undefined,
    );
    assert.equal(await getGroup('westeurope'), undefined, 'the idle group is gone');
    const after = (await server.api('GET', '/api/proxy-credentials?all=true')).body as Array<{ revokedAt?: string }>;
    assert.ok(after.length === 1 && after[0].revokedAt, "the proxy's credential is revoked with its group");

    // A restore into another region runs in a container group there.
    const restore = await server.cliJson<{
      state: string;
      error: string | null;
      result: { disks: Array<{ id: string; name: string; region: string }> };
    }>(['restore', done.recoveryPointId!, '--name', 'aci-copy', '--region', 'eastus']);
    assert.equal(restore.state, 'done', restore.error ?? '');
    for (const [name, expected] of content) {
      const disk = restore.result.disks.find((d) => d.name === `aci-copy-${name}`)!;
      assert.equal(disk.region, 'eastus');
      assert.ok((await server.diskContent(disk.id)).equals(expected), `${name} restores bit for bit`);
    }
    assert.match(server.log, /proxy for eastus started: container group goldsnap-proxy-eastus in eastus/);
    await server.waitFor('the eastus group to be deleted', async () => ((await getGroup('eastus')) ? undefined : true));
  });

  test('a group a crash left behind is deleted at the next start, and the run resumes in a new one', async () => {
    const vm = await server.createVm(vmSpec('aci-2'));
    const started = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;
    await server.waitFor('the proxy container group', async () =>
      (await getGroup('westeurope'))?.instanceView?.state === 'Running' ? true : undefined,
    );
    await server.kill9();
    await server.start(['--bandwidth', '4MiB']);
    assert.match(
      server.log,
      /proxy container group goldsnap-proxy-westeurope \(westeurope\) was left behind by an earlier server: deleted/,
    );
    const done = await finished(started.id);
    assert.equal(done.step, 'succeeded', done.error);
    await server.waitFor('the idle proxy group to be deleted', async () =>
      (await getGroup('westeurope')) ? undefined : true,
    );
  });

  test('a proxy credential is for one region, revocable; the old shared secret still works', async () => {
    const made = await server.cliJson<{ token: string; credential: { id: string; region: string } }>([
      'proxies',
      'credentials',
      'create',
      '--region',
      'eastus',
      '--name',
      'by-hand',
    ]);
    assert.equal(made.credential.region, 'eastus');
    const claim = (token: string, region: string) =>
      fetch(new URL('/internal/proxy/claim', server.url), {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ region, workerId: 'test' }),
      }).then(async (r) => ({ status: r.status, body: await r.text() }));
    const refused = await claim(made.token, 'westeurope');
    assert.equal(refused.status, 403);
    assert.match(refused.body, /is for region eastus; it cannot take work of region westeurope/);
    assert.equal((await claim(made.token, 'eastus')).status, 200);
    assert.equal((await claim(LEGACY, 'westeurope')).status, 200, 'GOLDSNAP_PROXY_TOKEN keeps working (deprecated)');

    const list = await server.cliJson<Array<{ id: string; name: string }>>(['proxies', 'credentials', 'list']);
    assert.ok(list.some((c) => c.id === made.credential.id && c.name === 'by-hand'));
    const revoked = await server.cli(['proxies', 'credentials', 'revoke', made.credential.id.slice(0, 8)]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal((await claim(made.token, 'eastus')).status, 401, 'a revoked credential is refused');
    const bad = await server.cli(['proxies', 'credentials', 'create', '--region', 'West Europe']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /region/);
  });
});

describe('cross-region reads', () => {
  let server: ServerUnderTest;
  before(async () => {
    // Local proxies run where the server does: here, "in eastus".
    server = await ServerUnderTest.create({ catalog: 'pglite', env: { GOLDSNAP_SERVER_REGION: 'eastus' } });
    await server.start();
  });
  after(async () => server.dispose());

  test("a run whose proxy is not in the disk's region says so and counts it", async () => {
    await server.createVm(vmSpec('far-1'));
    const run = await server.cliJson<Run>(['runs', 'start', 'far-1', '--wait']);
    assert.equal(run.step, 'succeeded', run.error);
    assert.ok(run.disks.every((d) => d.proxyRegion === 'eastus'));
    assert.equal(run.crossRegion?.transfers, 2);
    assert.equal(run.warnings?.length, 2);
    assert.match(run.warnings![0], /\(in westeurope\) was read by a data proxy in eastus/);
    const { crossRegion } = (await server.api('GET', '/api/proxies')).body as {
      crossRegion: { transfers: number; bytes: number };
    };
    assert.equal(crossRegion.transfers, 2, 'the server counts cross-region transfers');
  });
});
