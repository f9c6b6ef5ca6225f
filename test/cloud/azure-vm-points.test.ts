import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { GOLDSNAP_TAGS, VmPointUnsupportedError, type Cloud, type CloudSnapshot } from '../../src/cloud/cloud.ts';
import { openCloud } from '../../src/cloud/open-cloud.ts';
import { startEmulator, type Emulator } from '../../src/emulator/emulator.ts';

const MiB = 1024 * 1024;
let dir: string;
let emulator: Emulator;
let cloud: Cloud;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gs-vmpoints-'));
  emulator = await startEmulator({ dataDir: dir, port: 0 });
  await emulator.control.createVm({
    name: 'db-1',
    resourceGroup: 'rg-db',
    region: 'westeurope',
    seed: 1,
    disks: [
      { name: 'db-1-os', sizeBytes: 8 * MiB, role: 'os' },
      { name: 'db-1-data', sizeBytes: 6 * MiB, role: 'data', lun: 0 },
    ],
  });
  await emulator.control.createVm({
    name: 'fast-1',
    resourceGroup: 'rg-db',
    region: 'westeurope',
    seed: 2,
    disks: [
      { name: 'fast-1-os', sizeBytes: 4 * MiB, role: 'os' },
      { name: 'fast-1-data', sizeBytes: 4 * MiB, role: 'data', skuName: 'UltraSSD_LRS' },
    ],
  });
  cloud = await openCloud({ kind: 'emulator', connectionFile: emulator.connectionFile });
});

after(async () => {
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
});

async function read(snapshot: CloudSnapshot, offset: number, length: number): Promise<Buffer> {
  const reader = await cloud.openSnapshot(snapshot);
  try {
    const out = Buffer.alloc(length);
    await reader.read(offset, out);
    return out;
  } finally {
    await reader.close();
  }
}

test('a VM point gives one disk point per disk, read, diffed and deleted like snapshots', async () => {
  const vm = (await cloud.listVms()).find((v) => v.name === 'db-1')!;
  const run1 = randomUUID();
  const first = await cloud.createVmPoint!({ vm, name: `goldsnap-${run1}`, consistency: 'crash', tags: GOLDSNAP_TAGS });
  assert.equal(first.consistency, 'crash');
  assert.deepEqual(
    first.disks.map((d) => [d.diskId, d.sizeBytes]),
    vm.disks.map((d) => [d.id, d.sizeBytes]),
  );
  assert.equal(
    (await cloud.createVmPoint!({ vm, name: `goldsnap-${run1}`, consistency: 'crash', tags: GOLDSNAP_TAGS })).id,
    first.id,
    'creating again by name is idempotent',
  );

  const dataPoint = first.disks[1]!;
  const found = await cloud.getSnapshot(dataPoint.id);
  assert.equal(found?.sizeBytes, 6 * MiB, "a disk point has its disk's size");
  assert.equal(found?.diskId.toLowerCase(), vm.disks[1]!.id.toLowerCase());
  await cloud.waitForSnapshot(dataPoint.id);
  const before1 = await read(dataPoint, MiB, 4096);

  await emulator.control.writeToVm('db-1', {
    writes: [{ diskName: 'db-1-data', offset: MiB, length: 4096, pattern: 0x5a }],
  });
  const second = await cloud.createVmPoint!({
    vm,
    name: `goldsnap-${randomUUID()}`,
    consistency: 'application',
    tags: GOLDSNAP_TAGS,
  });
  assert.equal(second.consistency, 'application');
  const changed = await cloud.changedRanges(dataPoint, second.disks[1]!);
  assert.ok(
    changed.length === 1 && changed[0]!.offset <= MiB && changed[0]!.offset + changed[0]!.length >= MiB + 4096,
    JSON.stringify(changed),
  );
  assert.deepEqual(await read(second.disks[1]!, MiB, 4096), Buffer.alloc(4096, 0x5a));
  assert.deepEqual(await read(dataPoint, MiB, 4096), before1, 'the older point keeps its instant');

  const listed = await cloud.listGoldsnapVmPoints!();
  assert.deepEqual(listed.map((p) => p.id).sort(), [first.id, second.id].sort());
  assert.equal(listed.find((p) => p.id === first.id)?.runId, run1);

  // Deleting a disk point as a snapshot deletes its restore point (all its disks are one instant).
  await cloud.deleteSnapshot(dataPoint.id);
  assert.equal(await cloud.getSnapshot(first.disks[0]!.id), undefined);
  await cloud.deleteVmPoint!(second.id);
  await cloud.deleteVmPoint!(second.id);
  assert.deepEqual(await cloud.listGoldsnapVmPoints!(), []);
});

test('a VM that cannot have restore points says so with VmPointUnsupportedError', async () => {
  const vm = (await cloud.listVms()).find((v) => v.name === 'fast-1')!;
  await assert.rejects(
    cloud.createVmPoint!({ vm, name: `goldsnap-${randomUUID()}`, consistency: 'crash', tags: GOLDSNAP_TAGS }),
    VmPointUnsupportedError,
  );
});

test('restores: Goldsnap disks are listed by tag, the target group is made once, regions are known', async () => {
  assert.equal(cloud.knownRegion!('West Europe'), true);
  assert.equal(cloud.knownRegion!('mars-north'), false);
  await cloud.ensureResourceGroup!('copy-restore', 'westeurope', { goldsnap: 'true' });
  await cloud.ensureResourceGroup!('copy-restore', 'westeurope', { other: 'tags' });
  const { disk, writer } = await cloud.createDiskForRestore({
    name: 'copy-os',
    region: 'westeurope',
    resourceGroup: 'copy-restore',
    sizeBytes: 4 * MiB,
    tags: { ...GOLDSNAP_TAGS, goldsnapRestore: 'r1' },
    profile: { sku: 'UltraSSD_LRS', osType: 'Linux', hyperVGeneration: 'V2' },
  });
  await writer.commit();
  const listed = await cloud.listGoldsnapDisks!();
  assert.deepEqual(
    listed.map((d) => [d.id, d.tags.goldsnapRestore, d.attached]),
    [[disk.id, 'r1', false]],
  );
  assert.equal(disk.profile?.sku, 'Premium_LRS', 'Azure cannot upload to Ultra: the restore writes Premium SSD');
  assert.equal(disk.profile?.hyperVGeneration, 'V2');
  await cloud.deleteDisk(disk.id);
  assert.deepEqual(await cloud.listGoldsnapDisks!(), []);
});
