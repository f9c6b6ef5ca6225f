import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createRequire } from 'node:module';
import { compute, FAST, MiB, start, tempDir } from './helpers.ts';
import type { Emulator } from '../../src/emulator/emulator.ts';

// ajv and ajv-formats come with fastify (CommonJS).
const require = createRequire(import.meta.url);
const AjvCtor = require('ajv').default as new (
  o: object,
) => {
  addSchema(s: object): void;
  addFormat(
    name: string,
    v: RegExp | ((x: unknown) => boolean) | { type: string; validate: (x: number) => boolean },
  ): void;
  getSchema(ref: string): ((data: unknown) => boolean) & { errors?: unknown };
};
const addFormats = require('ajv-formats').default as (a: unknown) => void;

const schema = JSON.parse(
  readFileSync(new URL('../fixtures/azure-specs/diskrp-subset.schema.json', import.meta.url), 'utf8'),
) as object;
const ajv = new AjvCtor({ allErrors: true, strict: false });
addFormats(ajv);
ajv.addFormat('int32', { type: 'number', validate: (x: number) => Number.isInteger(x) && Math.abs(x) < 2 ** 31 });
ajv.addFormat('int64', { type: 'number', validate: (x: number) => Number.isSafeInteger(x) });
ajv.addFormat('float', { type: 'number', validate: () => true });
ajv.addSchema(schema);

function check(def: string, data: unknown): void {
  const v = ajv.getSchema(`goldsnap:diskrp-subset#/definitions/${def}`);
  assert.ok(v, `schema ${def}`);
  assert.ok(v(data), `${def}: ${JSON.stringify(v.errors, null, 1)}\n${JSON.stringify(data, null, 1)}`);
}

function raw(emu: Emulator, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  return new Promise((ok, fail) => {
    const u = new URL(path, emu.armEndpoint);
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    request(
      {
        method,
        hostname: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        ca: emu.caCertPem,
        headers: { authorization: `Bearer ${emu.token}`, ...(data ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          ok({
            status: res.statusCode!,
            json: chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined,
          }),
        );
      },
    )
      .on('error', fail)
      .end(data);
  });
}

test('emulator responses conform to the vendored DiskRP/ComputeRP schema subset', async () => {
  const { dir, cleanup } = await tempDir();
  const emu = await start(dir);
  try {
    const vm = await emu.control.createVm({
      name: 'v',
      resourceGroup: 'rg',
      region: 'westeurope',
      tags: { env: 'prod' },
      disks: [
        { name: 'v-os', sizeBytes: MiB, role: 'os' },
        { name: 'v-d', sizeBytes: MiB, role: 'data' },
      ],
    });
    const c = compute(emu);
    await c.snapshots.beginCreateOrUpdateAndWait(
      'rg',
      's',
      {
        location: 'westeurope',
        incremental: true,
        tags: { goldsnap: 'true' },
        creationData: { createOption: 'Copy', sourceResourceId: vm.disks[0]!.id },
      },
      FAST,
    );
    await c.disks.beginCreateOrUpdateAndWait(
      'rg',
      'u',
      { location: 'westeurope', creationData: { createOption: 'Upload', uploadSizeBytes: MiB } },
      FAST,
    );
    await c.disks.beginCreateOrUpdateAndWait(
      'rg',
      'e',
      { location: 'westeurope', diskSizeGB: 4, creationData: { createOption: 'Empty' } },
      FAST,
    );
    const av = '?api-version=2025-01-02';
    const sub = `/subscriptions/${emu.subscriptionId}`;
    const base = `${sub}/resourceGroups/rg/providers/Microsoft.Compute`;
    check('Snapshot', (await raw(emu, 'GET', `${base}/snapshots/s${av}`)).json);
    check('SnapshotList', (await raw(emu, 'GET', `${sub}/providers/Microsoft.Compute/snapshots${av}`)).json);
    check('SnapshotList', (await raw(emu, 'GET', `${base}/snapshots${av}`)).json);
    for (const d of ['v-os', 'v-d', 'u', 'e']) check('Disk', (await raw(emu, 'GET', `${base}/disks/${d}${av}`)).json);
    check('DiskList', (await raw(emu, 'GET', `${sub}/providers/Microsoft.Compute/disks${av}`)).json);
    check('VirtualMachine', (await raw(emu, 'GET', `${base}/virtualMachines/v${av}`)).json);
    check(
      'VirtualMachineListResult',
      (await raw(emu, 'GET', `${sub}/providers/Microsoft.Compute/virtualMachines${av}`)).json,
    );
    check(
      'AccessUri',
      await c.snapshots
        .beginGrantAccessAndWait('rg', 's', { access: 'Read', durationInSeconds: 60 }, FAST)
        .then((a) => ({ accessSAS: a.accessSAS })),
    );
    // The schema does reject wrong shapes.
    assert.equal(
      ajv.getSchema('goldsnap:diskrp-subset#/definitions/Snapshot')({
        id: 'x',
        name: 'x',
        type: 'Microsoft.Compute/snapshots',
        location: 'w',
        properties: { creationData: { createOption: 'Copy' }, diskSizeBytes: 'big' },
      }),
      false,
    );
    const nf = await raw(emu, 'GET', `${base}/snapshots/nope${av}`);
    assert.equal(nf.status, 404);
    check('CloudError', nf.json);
    // A PUT's immediate 202 body is a resource too.
    const put = await raw(emu, 'PUT', `${base}/snapshots/s2${av}`, {
      location: 'westeurope',
      properties: { incremental: true, creationData: { createOption: 'Copy', sourceResourceId: vm.disks[1]!.id } },
    });
    assert.equal(put.status, 202);
    check('Snapshot', put.json);
  } finally {
    await emu.close();
    await cleanup();
  }
});
