import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RestError } from '@azure/core-rest-pipeline';
import type { ComputeManagementClient } from '@azure/arm-compute';
import { compute, download, FAST, MiB, pageBlob, start, tempDir, toRanges } from './helpers.ts';
import type { Emulator } from '../../src/emulator/emulator.ts';

let emu: Emulator;
let c: ComputeManagementClient;
let cleanup: () => Promise<void>;

before(async () => {
  const t = await tempDir();
  cleanup = t.cleanup;
  emu = await start(t.dir);
  c = compute(emu);
  await emu.control.createVm({
    name: 'app-01',
    resourceGroup: 'rg-a',
    region: 'westeurope',
    tags: { env: 'prod' },
    seed: 7,
    disks: [
      { name: 'app-01-os', sizeBytes: 8 * MiB, role: 'os', fill: 'os-like' },
      { name: 'app-01-data', sizeBytes: 4 * MiB, role: 'data', lun: 0, fill: 'random' },
    ],
  });
  await emu.control.createVm({
    name: 'dev-01',
    resourceGroup: 'rg-b',
    region: 'eastus',
    seed: 8,
    disks: [{ name: 'dev-01-os', sizeBytes: 4 * MiB, role: 'os', fill: 'os-like' }],
  });
});

after(async () => {
  await emu.close();
  await cleanup();
});

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function status(p: Promise<unknown>): Promise<{ status: number; code: string | undefined }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RestError) return { status: e.statusCode ?? 0, code: e.code };
    throw e;
  }
  assert.fail('expected an error');
}

test('lists VMs with their disks (by subscription and resource group)', async () => {
  const vms = await all(c.virtualMachines.listAll());
  assert.deepEqual(vms.map((v) => v.name).sort(), ['app-01', 'dev-01']);
  const app = vms.find((v) => v.name === 'app-01')!;
  assert.equal(app.location, 'westeurope');
  assert.deepEqual(app.tags, { env: 'prod' });
  assert.match(
    app.id!,
    /^\/subscriptions\/[0-9a-f-]+\/resourceGroups\/rg-a\/providers\/Microsoft\.Compute\/virtualMachines\/app-01$/,
  );
  assert.match(app.storageProfile!.osDisk!.managedDisk!.id!, /\/disks\/app-01-os$/);
  assert.equal(app.storageProfile!.dataDisks![0]!.lun, 0);
  const inRg = await all(c.virtualMachines.list('rg-b'));
  assert.deepEqual(
    inRg.map((v) => v.name),
    ['dev-01'],
  );
  const disk = await c.disks.get('rg-a', 'app-01-os');
  assert.equal(disk.diskSizeBytes, 8 * MiB);
  assert.equal(disk.diskState, 'Attached');
  assert.equal(disk.managedBy, app.id);
  assert.equal((await all(c.disks.list())).length, 3);
});

test('incremental snapshots, SAS reads, allocated ranges and diffs reconstruct the disk', async () => {
  const osId = (await c.disks.get('rg-a', 'app-01-os')).id!;
  const snap1 = await c.snapshots.beginCreateOrUpdateAndWait(
    'rg-a',
    'snap-1',
    {
      location: 'westeurope',
      incremental: true,
      tags: { goldsnap: 'true' },
      creationData: { createOption: 'Copy', sourceResourceId: osId },
    },
    FAST,
  );
  assert.equal(snap1.provisioningState, 'Succeeded');
  assert.equal(snap1.incremental, true);
  assert.equal(snap1.diskSizeBytes, 8 * MiB);
  assert.deepEqual(snap1.tags, { goldsnap: 'true' });
  const base = await emu.control.readDisk(osId);

  // The VM keeps writing; the snapshot must not change.
  const written = await emu.control.writeToVm('app-01', {
    fraction: 0.05,
    seed: 3,
    writes: [{ diskName: 'app-01-os', offset: 12345, data: Buffer.from('hello') }],
  });
  const after = await emu.control.readDisk(osId);
  assert.notDeepEqual(after, base);
  const _snap2 = await c.snapshots.beginCreateOrUpdateAndWait(
    'rg-a',
    'snap-2',
    {
      location: 'westeurope',
      incremental: true,
      creationData: { createOption: 'Copy', sourceResourceId: osId },
    },
    FAST,
  );

  const sas1 = (
    await c.snapshots.beginGrantAccessAndWait('rg-a', 'snap-1', { access: 'Read', durationInSeconds: 3600 }, FAST)
  ).accessSAS!;
  const sas2 = (
    await c.snapshots.beginGrantAccessAndWait('rg-a', 'snap-2', { access: 'Read', durationInSeconds: 3600 }, FAST)
  ).accessSAS!;
  assert.equal((await c.snapshots.get('rg-a', 'snap-1')).diskState, 'ActiveSAS');
  const b1 = pageBlob(emu, sas1);
  const b2 = pageBlob(emu, sas2);
  const props = await b1.getProperties();
  assert.equal(props.blobType, 'PageBlob');
  assert.equal(props.contentLength, 8 * MiB);

  // Full read of snap-1 equals the disk at snapshot time; ranged reads work.
  assert.deepEqual(await download(b1, 0, 8 * MiB), base);
  assert.deepEqual(await download(b1, 1000, 70000), base.subarray(1000, 71000));
  // Many ranged reads at once, as a data proxy keeps them in flight, each get their own bytes:
  // the emulator reuses its read buffers from one response to the next.
  for (let round = 0; round < 3; round++) {
    const offsets = Array.from({ length: 20 }, (_, i) => ((i * 7 + round * 3) % 28) * 256 * 1024);
    const got = await Promise.all(offsets.map((o) => download(b1, o, MiB)));
    for (const [i, o] of offsets.entries())
      assert.ok(got[i].equals(base.subarray(o, o + MiB)), `the MiB at ${o}, round ${round}`);
  }

  // Allocated ranges cover every non-zero byte.
  const alloc = toRanges((await b1.getPageRanges(0, 8 * MiB)).pageRange);
  const covered = Buffer.alloc(8 * MiB);
  for (const r of alloc) covered.fill(1, r.offset, r.offset + r.length);
  for (let i = 0; i < base.length; i++)
    if (base[i] !== 0) assert.equal(covered[i], 1, `non-zero byte ${i} outside allocated ranges`);
  assert.ok(alloc.reduce((n, r) => n + r.length, 0) < 8 * MiB, 'os-like disks are sparse');

  // Diff covers every changed byte; base + changed ranges read from snap-2 (+ cleared → zeros) = disk.
  const diff = await b2.getPageRangesDiffForManagedDisks(0, 8 * MiB, sas1);
  const changed = toRanges(diff.pageRange);
  const cleared = toRanges(diff.clearRange);
  const rebuilt = Buffer.from(base);
  for (const r of changed) (await download(b2, r.offset, r.length)).copy(rebuilt, r.offset);
  for (const r of cleared) rebuilt.fill(0, r.offset, r.offset + r.length);
  assert.deepEqual(rebuilt, after);
  const inDiff = Buffer.alloc(8 * MiB);
  for (const r of [...changed, ...cleared]) inDiff.fill(1, r.offset, r.offset + r.length);
  let differing = 0;
  for (let i = 0; i < base.length; i++) {
    if (base[i] !== after[i]) {
      differing++;
      assert.equal(inDiff[i], 1, `changed byte ${i} not covered by the diff`);
    }
  }
  assert.ok(differing > 0 && written.length > 0);
  const changedBytes = changed.reduce((n, r) => n + r.length, 0);
  assert.ok(changedBytes < (8 * MiB) / 2, `diff is incremental (${changedBytes} bytes)`);

  // Revoke: the SAS stops working, state returns to Unattached.
  await c.snapshots.beginRevokeAccessAndWait('rg-a', 'snap-1', FAST);
  assert.equal((await c.snapshots.get('rg-a', 'snap-1')).diskState, 'Unattached');
  const err = await status(b1.getProperties());
  assert.equal(err.status, 403);
  // The diff against a revoked previous snapshot fails.
  assert.equal((await status(b2.getPageRangesDiffForManagedDisks(0, MiB, sas1))).status, 409);
  await c.snapshots.beginRevokeAccessAndWait('rg-a', 'snap-2', FAST);

  // Listing and deleting snapshots.
  assert.deepEqual(
    (await all(c.snapshots.listByResourceGroup('rg-a'))).map((s) => s.name),
    ['snap-1', 'snap-2'],
  );
  await c.snapshots.beginDeleteAndWait('rg-a', 'snap-1', FAST);
  assert.deepEqual(
    (await all(c.snapshots.list())).map((s) => s.name),
    ['snap-2'],
  );
  assert.equal((await status(c.snapshots.get('rg-a', 'snap-1'))).status, 404);
  // Snapshot content still intact after the older one was deleted (copy-on-write sharing).
  const sas2b = (
    await c.snapshots.beginGrantAccessAndWait('rg-a', 'snap-2', { access: 'Read', durationInSeconds: 60 }, FAST)
  ).accessSAS!;
  assert.deepEqual(await download(pageBlob(emu, sas2b), 0, 8 * MiB), after);
  await c.snapshots.beginRevokeAccessAndWait('rg-a', 'snap-2', FAST);
});

test('restore: upload disk via Put Page, disk from snapshot, VM from disks', async () => {
  const size = 3 * MiB;
  const disk = await c.disks.beginCreateOrUpdateAndWait(
    'rg-r',
    'restored-os',
    {
      location: 'westeurope',
      creationData: { createOption: 'Upload', uploadSizeBytes: size },
    },
    FAST,
  );
  assert.equal(disk.diskState, 'ReadyToUpload');
  assert.equal(disk.diskSizeBytes, size);
  const sas = (
    await c.disks.beginGrantAccessAndWait('rg-r', 'restored-os', { access: 'Write', durationInSeconds: 600 }, FAST)
  ).accessSAS!;
  assert.equal((await c.disks.get('rg-r', 'restored-os')).diskState, 'ActiveUpload');
  const blob = pageBlob(emu, sas);
  const content = Buffer.alloc(size);
  randomBytes(MiB).copy(content, 0);
  randomBytes(512).copy(content, 2 * MiB + 4096);
  await blob.uploadPages(content.subarray(0, MiB), 0, MiB);
  await blob.uploadPages(content.subarray(2 * MiB + 4096, 2 * MiB + 4608), 2 * MiB + 4096, 512);
  // Misaligned writes are rejected.
  assert.equal((await status(blob.uploadPages(Buffer.alloc(100), 0, 100))).status, 416);
  // Cannot attach or snapshot while uploading.
  assert.equal((await status(c.disks.beginDeleteAndWait('rg-r', 'restored-os', FAST))).status, 409);
  await c.disks.beginRevokeAccessAndWait('rg-r', 'restored-os', FAST);
  assert.equal((await c.disks.get('rg-r', 'restored-os')).diskState, 'Unattached');
  assert.equal((await status(blob.uploadPages(Buffer.alloc(512), 0, 512))).status, 403);
  const restoredId = (await c.disks.get('rg-r', 'restored-os')).id!;
  assert.deepEqual(await emu.control.readDisk(restoredId), content);

  // As on Azure, an upload ending with a fixed-VHD footer yields a disk of the raw size.
  const vhdRaw = 2 * MiB;
  await c.disks.beginCreateOrUpdateAndWait(
    'rg-r',
    'vhd',
    { location: 'westeurope', creationData: { createOption: 'Upload', uploadSizeBytes: vhdRaw + 512 } },
    FAST,
  );
  const vsas = (await c.disks.beginGrantAccessAndWait('rg-r', 'vhd', { access: 'Write', durationInSeconds: 600 }, FAST))
    .accessSAS!;
  const footer = Buffer.alloc(512);
  footer.write('conectix', 0, 'latin1');
  footer.writeBigUInt64BE(BigInt(vhdRaw), 40);
  footer.writeBigUInt64BE(BigInt(vhdRaw), 48);
  footer.writeUInt32BE(2, 60);
  const raw = randomBytes(vhdRaw);
  const vblob = pageBlob(emu, vsas);
  await vblob.uploadPages(raw, 0, vhdRaw);
  await vblob.uploadPages(footer, vhdRaw, 512);
  await c.disks.beginRevokeAccessAndWait('rg-r', 'vhd', FAST);
  const vhdDisk = await c.disks.get('rg-r', 'vhd');
  assert.equal(vhdDisk.diskSizeBytes, vhdRaw);
  assert.deepEqual(await emu.control.readDisk(vhdDisk.id!), raw);

  // A data disk copied from a snapshot of app-01-data.
  const dataId = (await c.disks.get('rg-a', 'app-01-data')).id!;
  const s = await c.snapshots.beginCreateOrUpdateAndWait(
    'rg-r',
    'data-snap',
    { location: 'westeurope', incremental: true, creationData: { createOption: 'Copy', sourceResourceId: dataId } },
    FAST,
  );
  const copy = await c.disks.beginCreateOrUpdateAndWait(
    'rg-r',
    'restored-data',
    { location: 'westeurope', creationData: { createOption: 'Copy', sourceResourceId: s.id! } },
    FAST,
  );
  assert.deepEqual(await emu.control.readDisk(copy.id!), await emu.control.readDisk(s.id!));

  const vm = await c.virtualMachines.beginCreateOrUpdateAndWait(
    'rg-r',
    'restored-vm',
    {
      location: 'westeurope',
      tags: { restoredFrom: 'app-01' },
      hardwareProfile: { vmSize: 'Standard_D2s_v3' },
      storageProfile: {
        osDisk: { createOption: 'Attach', osType: 'Linux', managedDisk: { id: restoredId } },
        dataDisks: [{ lun: 0, createOption: 'Attach', managedDisk: { id: copy.id! } }],
      },
    },
    FAST,
  );
  assert.equal(vm.provisioningState, 'Succeeded');
  assert.equal(vm.storageProfile!.dataDisks![0]!.managedDisk!.id, copy.id);
  assert.equal((await c.disks.get('rg-r', 'restored-os')).diskState, 'Attached');
  // Attached disks cannot be deleted nor attached twice.
  const del = await status(c.disks.beginDeleteAndWait('rg-r', 'restored-os', FAST));
  assert.deepEqual(del, { status: 409, code: 'OperationNotAllowed' });
  const twice = await status(
    c.virtualMachines.beginCreateOrUpdateAndWait(
      'rg-r',
      'vm-2',
      {
        location: 'westeurope',
        storageProfile: { osDisk: { createOption: 'Attach', managedDisk: { id: restoredId } } },
      },
      FAST,
    ),
  );
  assert.equal(twice.status, 409);
  // Delete the VM: disks detach and can then be deleted.
  await c.virtualMachines.beginDeleteAndWait('rg-r', 'restored-vm', FAST);
  assert.equal((await c.disks.get('rg-r', 'restored-os')).diskState, 'Unattached');
  await c.disks.beginDeleteAndWait('rg-r', 'restored-os', FAST);
  assert.equal((await status(c.disks.get('rg-r', 'restored-os'))).code, 'ResourceNotFound');
});

test('errors look like Azure', async () => {
  const nf = await status(c.snapshots.get('rg-a', 'nope'));
  assert.deepEqual(nf, { status: 404, code: 'ResourceNotFound' });
  const bad = await status(
    c.snapshots.beginCreateOrUpdateAndWait(
      'rg-a',
      'bad',
      { location: 'westeurope', creationData: { createOption: 'Copy' } },
      FAST,
    ),
  );
  assert.deepEqual(bad, { status: 400, code: 'InvalidParameter' });
  const region = await status(
    c.snapshots.beginCreateOrUpdateAndWait(
      'rg-a',
      'bad',
      {
        location: 'eastus',
        creationData: { createOption: 'Copy', sourceResourceId: (await c.disks.get('rg-a', 'app-01-os')).id! },
      },
      FAST,
    ),
  );
  assert.equal(region.status, 400);
  // Raw HTTP: missing token, wrong token, missing api-version.
  const { request } = await import('node:https');
  const call = (path: string, auth?: string) =>
    new Promise<{ status: number; body: { error: { code: string } } }>((ok, fail) => {
      const headers: Record<string, string> = auth ? { authorization: auth } : {};
      const u = new URL(path, emu.armEndpoint);
      request(
        { hostname: u.hostname, port: u.port, path: u.pathname + u.search, ca: emu.caCertPem, headers },
        (res) => {
          let t = '';
          res.on('data', (d) => (t += d));
          res.on('end', () => ok({ status: res.statusCode!, body: JSON.parse(t) }));
        },
      )
        .on('error', fail)
        .end();
    });
  const p = `/subscriptions/${emu.subscriptionId}/providers/Microsoft.Compute/virtualMachines`;
  assert.equal((await call(`${p}?api-version=2025-01-02`)).status, 401);
  const wrong = await call(`${p}?api-version=2025-01-02`, 'Bearer nope');
  assert.deepEqual([wrong.status, wrong.body.error.code], [401, 'InvalidAuthenticationToken']);
  const nov = await call(p, `Bearer ${emu.token}`);
  assert.deepEqual([nov.status, nov.body.error.code], [400, 'MissingApiVersionParameter']);
});
