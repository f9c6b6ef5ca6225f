import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ContainerInstanceManagementClient, type ContainerGroup } from '@azure/arm-containerinstance';
import { emulatorClientOptions, startEmulator, type Emulator } from '../../src/emulator/emulator.ts';
import { FAST, tempDir } from './helpers.ts';

/**
 * Microsoft.ContainerInstance/containerGroups in the emulator, through the unmodified
 * @azure/arm-containerinstance SDK: each container group runs a real `goldsnap` process.
 */

function group(
  command: string[],
  opts: { cpu?: number; location?: string; env?: Array<{ name: string; value?: string; secureValue?: string }> } = {},
): ContainerGroup {
  return {
    location: opts.location ?? 'westeurope',
    osType: 'Linux',
    restartPolicy: 'Never',
    tags: { goldsnap: 'true' },
    containers: [
      {
        name: 'main',
        image: 'goldsnap-proxy:test',
        command,
        environmentVariables: opts.env ?? [],
        resources: { requests: { cpu: opts.cpu ?? 1, memoryInGB: 1 } },
      },
    ],
  };
}

async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; ; i++) {
    const v = await check();
    if (v !== undefined) return v;
    if (i > 1200) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('emulated Azure Container Instances', () => {
  let emulator: Emulator;
  let aci: ContainerInstanceManagementClient;
  let cleanup: () => Promise<void>;
  let dir: string;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    emulator = await startEmulator({ dataDir: join(dir, 'emulator'), port: 0, containerGroups: { coresPerRegion: 3 } });
    const o = emulatorClientOptions(emulator);
    aci = new ContainerInstanceManagementClient(o.credential, o.subscriptionId, o.compute);
  });
  after(async () => {
    await emulator.close();
    await cleanup();
  });

  test('a container that exits is reported as Azure reports it: Terminated with its exit code', async () => {
    const made = await aci.containerGroups.beginCreateOrUpdateAndWait(
      'rg-aci',
      'ok-1',
      group(['goldsnap', '--version'], {
        env: [
          { name: 'PLAIN', value: 'visible' },
          { name: 'SECRET', secureValue: 'never-shown' },
        ],
      }),
      FAST,
    );
    assert.equal(made.provisioningState, 'Succeeded');
    assert.equal(made.location, 'westeurope');
    assert.deepEqual(
      made.containers[0].environmentVariables,
      [{ name: 'PLAIN', value: 'visible' }, { name: 'SECRET' }],
      'secure values are never returned',
    );
    const done = await until('the container to end', async () => {
      const g = await aci.containerGroups.get('rg-aci', 'ok-1');
      return g.containers[0].instanceView?.currentState?.state === 'Terminated' ? g : undefined;
    });
    assert.equal(done.instanceView?.state, 'Succeeded');
    assert.equal(done.containers[0].instanceView?.currentState?.exitCode, 0);
    assert.equal(done.containers[0].instanceView?.currentState?.detailStatus, 'Completed');
    assert.ok(
      !readFileSync(join(dir, 'emulator', 'container-groups.json'), 'utf8').includes('never-shown'),
      'secure values are not written to disk',
    );

    await aci.containerGroups.beginCreateOrUpdateAndWait(
      'rg-aci',
      'bad-1',
      group(['goldsnap', 'no-such-command']),
      FAST,
    );
    const failed = await until('the failing container to end', async () => {
      const g = await aci.containerGroups.get('rg-aci', 'bad-1');
      return g.containers[0].instanceView?.currentState?.state === 'Terminated' ? g : undefined;
    });
    assert.equal(failed.instanceView?.state, 'Failed');
    assert.notEqual(failed.containers[0].instanceView?.currentState?.exitCode, 0);
    assert.equal(failed.containers[0].instanceView?.currentState?.detailStatus, 'Error');

    const names: string[] = [];
    for await (const g of aci.containerGroups.listByResourceGroup('rg-aci')) names.push(g.name!);
    assert.deepEqual(names.sort(), ['bad-1', 'ok-1']);
    const all: string[] = [];
    for await (const g of aci.containerGroups.list()) all.push(g.name!);
    assert.equal(all.length, 2);
    for (const name of names) await aci.containerGroups.beginDeleteAndWait('rg-aci', name, FAST);
    await assert.rejects(
      aci.containerGroups.get('rg-aci', 'ok-1'),
      (err: { statusCode?: number; code?: string }) => err.statusCode === 404 && err.code === 'ResourceNotFound',
    );
  });

  test('a running container runs until its group is deleted; a region has a core quota', async () => {
    const inner = join(dir, 'inner-emulator');
    // A goldsnap program that runs until stopped: an emulator of its own, in a folder from the environment.
    await aci.containerGroups.beginCreateOrUpdateAndWait(
      'rg-aci',
      'long-1',
      group(['goldsnap', 'emulator', '--data', inner, '--port', '0'], { cpu: 2 }),
      FAST,
    );
    const running = await until('the container to run', async () => {
      const g = await aci.containerGroups.get('rg-aci', 'long-1');
      return g.instanceView?.state === 'Running' && existsSync(join(inner, 'connection.json')) ? g : undefined;
    });
    assert.equal(running.containers[0].instanceView?.currentState?.state, 'Running');
    const endpoint = (JSON.parse(readFileSync(join(inner, 'connection.json'), 'utf8')) as { armEndpoint: string })
      .armEndpoint;
    const answers = async () =>
      fetch(endpoint).then(
        () => true,
        (err: Error) => !/ECONNREFUSED/.test(String((err.cause as Error | undefined)?.message ?? err.message)),
      );
    await until('the container to listen', async () => ((await answers()) ? true : undefined));

    // 2 cores used of 3 in westeurope: 2 more are refused there, not elsewhere.
    await assert.rejects(
      aci.containerGroups.beginCreateOrUpdateAndWait(
        'rg-aci',
        'over-1',
        group(['goldsnap', '--version'], { cpu: 2 }),
        FAST,
      ),
      (err: { statusCode?: number; code?: string; message: string }) =>
        err.statusCode === 400 &&
        err.code === 'ContainerGroupQuotaReached' &&
        /StandardCores.*westeurope.*Limit: '3', Usage: '2' Requested: '2'/.test(err.message),
    );
    await aci.containerGroups.beginCreateOrUpdateAndWait(
      'rg-aci',
      'other-1',
      group(['goldsnap', '--version'], { cpu: 2, location: 'eastus' }),
      FAST,
    );
    await aci.containerGroups.beginDeleteAndWait('rg-aci', 'other-1', FAST);

    await aci.containerGroups.beginDeleteAndWait('rg-aci', 'long-1', FAST);
    assert.equal(await answers(), false, 'deleting the group stopped its process');
  });
});
