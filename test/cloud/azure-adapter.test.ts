import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { GOLDSNAP_TAGS } from '../../src/cloud/cloud.ts';
import { openCloud } from '../../src/cloud/open-cloud.ts';
import type { Cloud, CloudSnapshot, CloudVm } from '../../src/cloud/cloud.ts';
import { startEmulator, type Emulator } from '../../src/emulator/emulator.ts';

const MiB = 1024 * 1024;
let dir: string;
let emulator: Emulator;
let cloud: Cloud;
let vm: CloudVm;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gs-azure-'));
  emulator = await startEmulator({ dataDir: dir, port: 0 });
  await emulator.control.createVm({
    name: 'web-1',
    resourceGroup: 'rg-prod',
    region: 'westeurope',
    tags: { env: 'prod' },
    disks: [
      { name: 'web-1-os', sizeBytes: 32 * MiB, role: 'os', fill: 'os-like' },
      { name: 'web-1-data', sizeBytes: 16 * MiB, role: 'data', lun: 0, fill: 'random' },
    ],
  });
  // Through the connection file, as a data proxy in another process connects.
  cloud = await openCloud({ kind: 'emulator', connectionFile: emulator.connectionFile });
});

after(async () => {
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
});

async function read(snapshot: CloudSnapshot, offset = 0, length = snapshot.sizeBytes): Promise<Buffer> {
  const reader = await cloud.openSnapshot(snapshot);
  try {
    const out = Buffer.alloc(length);
    await reader.read(offset, out);
    return out;
  } finally {
    await reader.close();
  }
}

test('discovers VMs with their OS and data disks', async () => {
  const vms = await cloud.listVms();
  vm = vms.find((v) => v.name === 'web-1')!;
  assert.ok(vm, 'web-1 is listed');
  assert.equal(vm.region, 'westeurope');
  assert.equal(vm.resourceGroup.toLowerCase(), 'rg-prod');
  assert.deepEqual(vm.tags, { env: 'prod' });
  assert.deepEqual(
    vm.disks.map((d) => [d.name, d.role, d.sizeBytes, d.lun]),
    [
      ['web-1-os', 'os', 32 * MiB, undefined],
      ['web-1-data', 'data', 16 * MiB, 0],
    ],
  );
  assert.equal((await cloud.getVm(vm.id)).name, 'web-1');
});

test('incremental snapshots: allocated ranges, reads, changed ranges, tags and delete', async () => {
  const disk = vm.disks[0];
  const first = await cloud.createSnapshot({ disk, name: 'gs-a', tags: { ...GOLDSNAP_TAGS, goldsnapRun: 'r1' } });
  assert.equal(first.sizeBytes, disk.sizeBytes);
  assert.equal(
    (await cloud.createSnapshot({ disk, name: 'gs-a', tags: GOLDSNAP_TAGS })).id,
    first.id,
    'creating again by name is idempotent',
  );

  const content = await read(first);
  assert.ok(content.equals(await emulator.control.readDisk(disk.id)), 'snapshot reads equal the disk content');
  const allocated = await cloud.allocatedRanges(first);
  const covered = Buffer.alloc(disk.sizeBytes);
  for (const r of allocated) content.copy(covered, r.offset, r.offset, r.offset + r.length);
  assert.ok(covered.equals(content), 'every non-zero byte lies in an allocated range');

  const written = await emulator.control.writeToVm('web-1', {
    writes: [
      { diskName: 'web-1-os', offset: 5 * MiB + 4096, length: 8192, pattern: 'random' },
      { diskName: 'web-1-os', offset: 20 * MiB, length: 512, pattern: 'zeros' },
    ],
  });
  assert.equal(written.length, 2);
  const second = await cloud.createSnapshot({ disk, name: 'gs-b', tags: GOLDSNAP_TAGS });
  const changed = await cloud.changedRanges(first, second);
  const now = await read(second);
  // Base content plus the changed ranges read from the new snapshot rebuild it exactly.
  const rebuilt = Buffer.from(content);
  for (const r of changed) now.copy(rebuilt, r.offset, r.offset, r.offset + r.length);
  assert.ok(rebuilt.equals(now), 'changed ranges cover every changed byte');
  const changedBytes = changed.reduce((n, r) => n + r.length, 0);
  assert.ok(changedBytes < 2 * MiB, `changed ranges are small (${changedBytes} bytes)`);

  const ours = await cloud.listGoldsnapSnapshots();
  assert.deepEqual(ours.map((s) => s.name).sort(), ['gs-a', 'gs-b']);
  assert.equal(ours.find((s) => s.name === 'gs-a')!.tags.goldsnapRun, 'r1');
  await cloud.deleteSnapshot(first.id);
  await cloud.deleteSnapshot(first.id);
  assert.equal(await cloud.getSnapshot(first.id), undefined);
  await cloud.deleteSnapshot(second.id);
});

test('restores to a new disk in another region and builds a VM from it', async () => {
  const source = await read(await cloud.createSnapshot({ disk: vm.disks[1], name: 'gs-c', tags: GOLDSNAP_TAGS }));
  const { disk, writer } = await cloud.createDiskForRestore({
    name: 'restored-data',
    region: 'eastus',
    resourceGroup: 'rg-restore',
    sizeBytes: 16 * MiB,
    tags: GOLDSNAP_TAGS,
  });
  assert.equal(disk.region, 'eastus');
  for (let at = 0; at < source.length; at += 3 * MiB)
    await writer.write(at, source.subarray(at, Math.min(source.length, at + 3 * MiB)));
  await writer.commit();
  assert.ok(
    (await emulator.control.readDisk(disk.id)).subarray(0, source.length).equals(source),
    'the new disk holds the restored bytes',
  );

  const os = await cloud.createDiskForRestore({
    name: 'restored-os',
    region: 'eastus',
    resourceGroup: 'rg-restore',
    sizeBytes: 4 * MiB,
    tags: GOLDSNAP_TAGS,
  });
  await os.writer.commit();
  const restored = await cloud.createVm({
    name: 'web-1-restored',
    region: 'eastus',
    resourceGroup: 'rg-restore',
    osDisk: os.disk,
    dataDisks: [{ ...disk, lun: 0 }],
    tags: GOLDSNAP_TAGS,
  });
  assert.equal(restored.region, 'eastus');
  assert.deepEqual(
    restored.disks.map((d) => d.name),
    ['restored-os', 'restored-data'],
  );
});

test('a failed upload deletes its disk', async () => {
  const { disk, writer } = await cloud.createDiskForRestore({
    name: 'doomed',
    region: 'westeurope',
    resourceGroup: 'rg-restore',
    sizeBytes: 2 * MiB,
    tags: GOLDSNAP_TAGS,
  });
  await writer.write(0, Buffer.alloc(4096, 7));
  await writer.abort();
  await assert.rejects(emulator.control.readDisk(disk.id));
});
