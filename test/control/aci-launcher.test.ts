import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ContainerInstanceManagementClient } from '@azure/arm-containerinstance';
import { openDatabase, type Database } from '../../src/control/catalog/database.ts';
import { migrate } from '../../src/control/catalog/migrations.ts';
import { ProxyCredentialStore } from '../../src/control/catalog/proxy-credentials.ts';
import { AciProxyLauncher } from '../../src/control/proxy/aci-launcher.ts';
import { JobQueue } from '../../src/control/queue/job-queue.ts';
import type { JobPayloads } from '../../src/control/jobs.ts';
import { emulatorClientOptions, startEmulator, type Emulator } from '../../src/emulator/emulator.ts';
import { freshPGliteDataDir } from './backends.ts';

/**
 * The ACI launcher on its own, against the emulator: a proxy container that cannot start (here,
 * no repository at the location it is given) ends, and the launcher deletes its group, revokes
 * its credential and waits before trying that region again.
 */
let dir: string;
let db: Database;
let emulator: Emulator;
before(async () => {
  dir = await freshPGliteDataDir({ migrated: true });
  db = await openDatabase({ dataDir: dir });
  await migrate(db);
  emulator = await startEmulator({ dataDir: join(dir, 'emulator'), port: 0 });
});
after(async () => {
  await emulator.close();
  await db.close();
  await rm(dir, { recursive: true, force: true });
});

test('a proxy container that exits with an error is deleted, its credential revoked, its region backed off', async () => {
  const o = emulatorClientOptions(emulator);
  const client = new ContainerInstanceManagementClient(o.credential, o.subscriptionId, o.compute);
  const queue = new JobQueue<JobPayloads>(db);
  const credentials = new ProxyCredentialStore(db);
  const lines: string[] = [];
  const launcher = new AciProxyLauncher({
    queue,
    client,
    resourceGroup: 'goldsnap-proxies',
    image: 'goldsnap-proxy:test',
    cpu: 1,
    memoryInGB: 1,
    idleSeconds: 60,
    pollMs: 100,
    lroPollMs: 20,
    log: (line) => lines.push(line),
    env: () => ({ GOLDSNAP_CLOUD: 'emulator', GOLDSNAP_EMULATOR: emulator.connectionFile }),
    secureEnv: () => ({
      GOLDSNAP_SERVER_URL: 'http://127.0.0.1:9',
      GOLDSNAP_REPOSITORY: join(dir, 'no-repository-here'),
      GOLDSNAP_PASSWORD: 'x',
    }),
    credentials: {
      issue: async (region) => {
        const made = await credentials.create(region, `test ${region}`, 'launcher:test');
        return { id: made.credential.id, token: made.token };
      },
      revoke: async (id) => {
        await credentials.revoke(id);
      },
    },
  });
  await queue.enqueue({ queue: 'transfer:northeurope', kind: 'transfer', payload: { runId: 'r', diskId: 'd' } });
  await launcher.reconcile();
  assert.deepEqual(
    launcher.list().map((p) => [p.region, p.containerGroup]),
    [['northeurope', 'goldsnap-proxy-northeurope']],
  );
  const group = await client.containerGroups.get('goldsnap-proxies', 'goldsnap-proxy-northeurope');
  assert.equal(group.location, 'northeurope');
  assert.equal((await credentials.list())[0]?.region, 'northeurope');

  for (let i = 0; launcher.list().length > 0; i++) {
    assert.ok(i < 3000, `the failed container is noticed (log: ${lines.join(' | ')})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await launcher.reconcile();
  }
  assert.ok(
    lines.some((l) =>
      /proxy for northeurope \(container group goldsnap-proxy-northeurope\) ended: container Terminated, exit 1 \(Error\); deleted/.test(
        l,
      ),
    ),
    lines.join('\n'),
  );
  await assert.rejects(
    client.containerGroups.get('goldsnap-proxies', 'goldsnap-proxy-northeurope'),
    (err: { statusCode?: number }) => err.statusCode === 404,
  );
  assert.equal((await credentials.list()).length, 0, 'its credential is revoked');
  await launcher.reconcile();
  assert.equal(launcher.list().length, 0, 'no new container at once: the region backs off after a failure');
  await launcher.stopAll();
});
