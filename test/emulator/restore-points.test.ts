import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RestError } from '@azure/core-rest-pipeline';
import type { ComputeManagementClient, DiskRestorePoint } from '@azure/arm-compute';
import { compute, download, FAST, MiB, pageBlob, start, tempDir, toRanges } from './helpers.ts';
import { EXTENT_SIZE, type Emulator } from '../../src/emulator/emulator.ts';

let emu: Emulator;
let c: ComputeManagementClient;
let cleanup: () => Promise<void>;
let vmId: string;
let dataDir: string;

before(async () => {
  const t = await tempDir();
  cleanup = t.cleanup;
  dataDir = t.dir;
  emu = await start(t.dir);
  c = compute(emu);
  vmId = (
    await emu.control.createVm({
      name: 'db-01',
      resourceGroup: 'rg-db',
      region: 'westeurope',
      seed: 3,
      disks: [
        { name: 'db-01-os', sizeBytes: 4 * MiB, role: 'os' },
        { name: 'db-01-data', sizeBytes: 4 * MiB, role: 'data', lun: 0 },
        { name: 'db-01-log', sizeBytes: 4 * MiB, role: 'data', lun: 1 },
      ],
    })
  ).id;
});

after(async () => {
  await emu.close();
  await cleanup();
});

/** A 512-byte page holding a sequence number, as a database writes its data and its log together. */
function page(seq: number): Buffer {
  const b = Buffer.alloc(512);
  for (let i = 0; i < 512; i += 4) b.writeUInt32LE(seq, i);
  return b;
}

/** Writes sequence numbers to both data disks of the VM without pause until stopped. */
function startWriter(vm: string, disks: [string, string]) {
  let stop = false;
  let seq = 0;
  const done = (async () => {
    while (!stop) {
      seq++;
      await emu.control.writeToVm(vm, { writes: disks.map((d) => ({ diskName: d, offset: 0, data: page(seq) })) });
    }
  })();
  return {
    stop: async () => {
      stop = true;
      await done;
      return seq;
    },
    get seq() {
      return seq;
    },
  };
}

async function status(p: Promise<unknown>): Promise<{ status: number; code: string | undefined; message: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RestError) return { status: e.statusCode ?? 0, code: e.code, message: e.message };
    throw e;
  }
  assert.fail('expected an error');
}

async function readSeq(rg: string, coll: string, point: string, drp: string): Promise<{ seq: number; sas: string }> {
  const { accessSAS } = await c.diskRestorePoint.beginGrantAccessAndWait(
    rg,
    coll,
    point,
    drp,
    { access: 'Read', durationInSeconds: 600 },
    FAST,
  );
  const head = await download(pageBlob(emu, accessSAS!), 0, 512);
  return { seq: head.readUInt32LE(0), sas: accessSAS! };
}

test('a restore point is one instant of all the disks of a VM that writes without pause', async () => {
  await c.restorePointCollections.createOrUpdate('rg-db', 'goldsnap-db-01', {
    location: 'westeurope',
    tags: { goldsnap: 'true' },
    source: { id: vmId },
  });
  const writer = startWriter('db-01', ['db-01-data', 'db-01-log']);
  // Wait for the writer to be going (an event, not a delay).
  while (writer.seq < 3) await new Promise((r) => setImmediate(r));
  const point = await c.restorePoints.beginCreateAndWait(
    'rg-db',
    'goldsnap-db-01',
    'p1',
    { consistencyMode: 'CrashConsistent' },
    FAST,
  );
  const before2 = writer.seq;
  while (writer.seq < before2 + 3) await new Promise((r) => setImmediate(r));
  const point2 = await c.restorePoints.beginCreateAndWait(
    'rg-db',
    'goldsnap-db-01',
    'p2',
    { consistencyMode: 'ApplicationConsistent' },
    FAST,
  );
  const last = await writer.stop();
  assert.equal(point.consistencyMode, 'CrashConsistent');
  assert.equal(point2.consistencyMode, 'ApplicationConsistent');
  assert.equal(point.provisioningState, 'Succeeded');
  const meta = point.sourceMetadata!.storageProfile!;
  assert.match(meta.osDisk!.managedDisk!.id!, /\/disks\/db-01-os$/);
  assert.deepEqual(
    meta.dataDisks!.map((d) => d.lun),
    [0, 1],
  );

  const drps: DiskRestorePoint[] = [];
  for await (const d of c.diskRestorePoint.listByRestorePoint('rg-db', 'goldsnap-db-01', 'p1')) drps.push(d);
  assert.equal(drps.length, 3);
  const byDisk = (suffix: string, list = drps) => list.find((d) => d.sourceResourceId!.endsWith(suffix))!.name!;
  const data1 = await readSeq('rg-db', 'goldsnap-db-01', 'p1', byDisk('/db-01-data'));
  const log1 = await readSeq('rg-db', 'goldsnap-db-01', 'p1', byDisk('/db-01-log'));
  assert.ok(data1.seq > 0 && data1.seq < last);
  assert.equal(log1.seq, data1.seq, 'the data and log disks of one restore point are one instant');

  const drps2: DiskRestorePoint[] = [];
  for await (const d of c.diskRestorePoint.listByRestorePoint('rg-db', 'goldsnap-db-01', 'p2')) drps2.push(d);
  const data2 = await readSeq('rg-db', 'goldsnap-db-01', 'p2', byDisk('/db-01-data', drps2));
  const log2 = await readSeq('rg-db', 'goldsnap-db-01', 'p2', byDisk('/db-01-log', drps2));
  assert.equal(log2.seq, data2.seq);
  assert.ok(data2.seq > data1.seq);

  // Disk restore points of one disk diff like incremental snapshots: only the extent the VM rewrote.
  const diff = await pageBlob(emu, data2.sas).getPageRangesDiffForManagedDisks(0, 4 * MiB, data1.sas);
  assert.deepEqual(toRanges(diff.pageRange), [{ offset: 0, length: EXTENT_SIZE }]);
  // Across disks there is no diff, as Azure refuses one between snapshot families.
  const refused = await pageBlob(emu, data2.sas)
    .getPageRangesDiffForManagedDisks(0, 4 * MiB, log1.sas)
    .then(
      () => 0,
      (e: RestError) => e.statusCode,
    );
  assert.equal(refused, 409);

  // A restore point whose disks are being read cannot be deleted; once access ends it can.
  const busy = await status(c.restorePoints.beginDeleteAndWait('rg-db', 'goldsnap-db-01', 'p1', FAST));
  assert.equal(busy.status, 409);
  for (const d of drps)
    await c.diskRestorePoint.beginRevokeAccessAndWait('rg-db', 'goldsnap-db-01', 'p1', d.name!, FAST);
  await c.restorePoints.beginDeleteAndWait('rg-db', 'goldsnap-db-01', 'p1', FAST);
  assert.equal((await status(c.restorePoints.get('rg-db', 'goldsnap-db-01', 'p1'))).status, 404);
  assert.equal((await status(c.diskRestorePoint.get('rg-db', 'goldsnap-db-01', 'p1', drps[0]!.name!))).status, 404);
  const coll = await c.restorePointCollections.get('rg-db', 'goldsnap-db-01', { expand: 'restorePoints' });
  assert.deepEqual(
    coll.restorePoints!.map((p) => p.name),
    ['p2'],
  );
  for (const d of drps2)
    await c.diskRestorePoint.beginRevokeAccessAndWait('rg-db', 'goldsnap-db-01', 'p2', d.name!, FAST);
  await c.restorePointCollections.beginDeleteAndWait('rg-db', 'goldsnap-db-01', FAST);
  assert.equal((await status(c.restorePoints.get('rg-db', 'goldsnap-db-01', 'p2'))).status, 404);
});

test('a VM with an Ultra disk cannot have restore points, as on Azure', async () => {
  const ultra = await emu.control.createVm({
    name: 'fast-01',
    resourceGroup: 'rg-db',
    region: 'westeurope',
    seed: 4,
    disks: [
      { name: 'fast-01-os', sizeBytes: 4 * MiB, role: 'os' },
      { name: 'fast-01-data', sizeBytes: 4 * MiB, role: 'data', skuName: 'UltraSSD_LRS' },
    ],
  });
  await c.restorePointCollections.createOrUpdate('rg-db', 'goldsnap-fast-01', {
    location: 'westeurope',
    source: { id: ultra.id },
  });
  const refused = await status(
    c.restorePoints.beginCreateAndWait('rg-db', 'goldsnap-fast-01', 'p1', { consistencyMode: 'CrashConsistent' }, FAST),
  );
  assert.equal(refused.status, 400);
  assert.match(refused.message, /UltraSSD_LRS/);
  const wrongRegion = await status(
    c.restorePointCollections.createOrUpdate('rg-db', 'other', { location: 'eastus', source: { id: ultra.id } }),
  );
  assert.equal(wrongRegion.status, 400);
});

test('restore points survive an emulator restart, content included', async () => {
  await c.restorePointCollections.createOrUpdate('rg-db', 'keep', { location: 'westeurope', source: { id: vmId } });
  await c.restorePoints.beginCreateAndWait('rg-db', 'keep', 'p1', { consistencyMode: 'CrashConsistent' }, FAST);
  const before1 = await emu.control.readDisk('db-01-log');
  const drp = (await c.restorePoints.get('rg-db', 'keep', 'p1')).sourceMetadata!.storageProfile!.dataDisks![1]!
    .diskRestorePoint!.id!;
  await emu.control.writeToVm('db-01', { writes: [{ diskName: 'db-01-log', offset: 0, length: 4096, pattern: 7 }] });
  await emu.close();
  emu = await start(dataDir);
  c = compute(emu);
  assert.ok(
    (await emu.control.readDisk(drp)).equals(before1),
    'the disk restore point still holds the instant it was taken',
  );
  assert.equal((await c.restorePoints.get('rg-db', 'keep', 'p1')).consistencyMode, 'CrashConsistent');
});
