import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, test } from 'node:test';
import { ComputeManagementClient } from '@azure/arm-compute';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import { AzureCloud } from '../../src/cloud/azure.ts';
import { GOLDSNAP_TAGS, type CloudSnapshot } from '../../src/cloud/cloud.ts';
import { DiffRefusedError } from '../../src/cloud/diff-refused.ts';
import { SnapshotLimitError } from '../../src/cloud/snapshot-limits.ts';
import { emulatorClientOptions, startEmulator, type Emulator } from '../../src/emulator/emulator.ts';
import { tempDir } from '../emulator/helpers.ts';

const MiB = 1024 * 1024;
const FAST = { updateIntervalInMs: 20 };
const cleanups: Array<() => Promise<void>> = [];
let emulator: Emulator;
let cloud: AzureCloud;
let compute: ComputeManagementClient;

function cloudOf(emu: Emulator, extra: Partial<ConstructorParameters<typeof AzureCloud>[0]> = {}): AzureCloud {
  const o = emulatorClientOptions(emu.connectionInfo());
  return new AzureCloud({
    subscriptionId: o.subscriptionId,
    credential: o.credential,
    computeOptions: o.compute,
    blobOptions: o.blob,
    pollIntervalMs: 20,
    ...extra,
  });
}

async function startOne(opts: Omit<Parameters<typeof startEmulator>[0], 'dataDir'> = {}): Promise<Emulator> {
  const t = await tempDir('gs-real-');
  const emu = await startEmulator({ dataDir: t.dir, port: 0, ...opts });
  cleanups.push(async () => {
    await emu.close();
    await t.cleanup();
  });
  return emu;
}

function control(emu: Emulator, method: string, path: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(`/_emulator/${path}`, emu.armEndpoint),
      { method, ca: emu.caCertPem, headers: { authorization: `Bearer ${emu.token}` } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () =>
          (res.statusCode ?? 500) >= 300
            ? reject(new Error(Buffer.concat(parts).toString()))
            : resolve(JSON.parse(Buffer.concat(parts).toString())),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A VM with one all-zero disk where `count` 4 KiB writes land `stride` apart: `count` separate page ranges. */
async function fragmentedVm(emu: Emulator, name: string, sizeBytes: number, count: number, stride: number) {
  const info = await emu.control.createVm({
    name,
    resourceGroup: 'rg-real',
    region: 'westeurope',
    disks: [{ name: `${name}-os`, sizeBytes, role: 'os', fill: 'zeros' }],
  });
  await emu.control.writeToVm(name, {
    writes: Array.from({ length: count }, (_, i) => ({
      diskName: `${name}-os`,
      offset: i * stride,
      length: 4096,
      pattern: 'random' as const,
    })),
  });
  const vm = (await cloudOf(emu).listVms()).find((v) => v.name === name)!;
  return { info, disk: vm.disks[0]! };
}

async function readAll(c: AzureCloud, s: CloudSnapshot): Promise<Buffer> {
  const r = await c.openSnapshot(s);
  try {
    const out = Buffer.alloc(s.sizeBytes);
    await r.read(0, out);
    return out;
  } finally {
    await r.close();
  }
}

before(async () => {
  // Limits lowered so that small disks reach them; the behaviour is Azure's.
  emulator = await startOne({ limits: { pageRangesPerResponse: 10, pageRangesTimeout: 24 } });
  cloud = cloudOf(emulator);
  const o = emulatorClientOptions(emulator.connectionInfo());
  compute = new ComputeManagementClient(o.credential, o.subscriptionId, o.compute);
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('Get Page Ranges pages with NextMarker and times out on a fragmented span; the adapter gets every range', async () => {
  const { disk } = await fragmentedVm(emulator, 'frag-1', 16 * MiB, 32, 512 * 1024);
  const a = await cloud.createSnapshot({ disk, name: 'frag-a', tags: GOLDSNAP_TAGS });
  const { accessSAS } = await compute.snapshots.beginGrantAccessAndWait(
    'rg-real',
    'frag-a',
    { access: 'Read', durationInSeconds: 600 },
    FAST,
  );
  const blob = new PageBlobClient(accessSAS!, new AnonymousCredential(), {
    ...emulatorClientOptions(emulator.connectionInfo()).blob,
    retryOptions: { maxTries: 1 },
  });
  // The whole disk holds 32 ranges, more than the 24 the emulator lists before timing out.
  await assert.rejects(
    blob.getPageRanges(0, 16 * MiB),
    (err: any) => err.statusCode === 500 && /OperationTimedOut/.test(String(err.code ?? err.details?.errorCode)),
  );
  const first = await blob.getPageRanges(0, 8 * MiB);
  assert.equal(first.pageRange?.length, 10, 'at most 10 ranges per answer here');
  assert.ok((first as { continuationToken?: string }).continuationToken, 'with a NextMarker');
  await compute.snapshots.beginRevokeAccessAndWait('rg-real', 'frag-a', FAST);

  const allocated = await cloud.allocatedRanges(a);
  assert.deepEqual(
    allocated.map((r) => r.offset),
    Array.from({ length: 32 }, (_, i) => i * 512 * 1024),
    'every range, by segments and NextMarker',
  );
  await emulator.control.writeToVm('frag-1', {
    writes: Array.from({ length: 32 }, (_, i) => ({
      diskName: 'frag-1-os',
      offset: i * 512 * 1024 + 8192,
      length: 512,
      pattern: 'random' as const,
    })),
  });
  const b = await cloud.createSnapshot({ disk, name: 'frag-b', tags: GOLDSNAP_TAGS });
  const changed = await cloud.changedRanges(a, b);
  assert.equal(changed.length, 32, 'a truncated diff is asked again in halves until every answer is whole');
  assert.deepEqual((await control(emulator, 'GET', 'grants')).value, [], 'every SAS released');
});

test('an expired SAS is renewed mid-read, before expiry and after a 403, without starting over', async () => {
  const { disk } = await fragmentedVm(emulator, 'sas-1', 8 * MiB, 4, 2 * MiB);
  const s = await cloud.createSnapshot({ disk, name: 'sas-a', tags: GOLDSNAP_TAGS });
  const expected = await emulator.control.readDisk(disk.id);
  // After a 403: the emulator expires every SAS it gave (as time passing would) between two reads.
  const reader = await cloud.openSnapshot(s);
  const out = Buffer.alloc(s.sizeBytes);
  await reader.read(0, out.subarray(0, 4 * MiB));
  const renewals = cloud.grants.renewals;
  assert.ok((await control(emulator, 'POST', 'expire-sas')).expired >= 1);
  await reader.read(4 * MiB, out.subarray(4 * MiB));
  await reader.close();
  assert.ok(out.equals(expected), 'the read went on where it was');
  assert.equal(cloud.grants.renewals, renewals + 1, 'renewed once, after the 403');
  // Before expiry: a SAS of 2 s is renewed once it is close to its `se`.
  const shortLived = cloudOf(emulator, { sasDurationSeconds: 2 });
  const r2 = await shortLived.openSnapshot(s);
  const part = Buffer.alloc(MiB);
  await r2.read(0, part);
  const until = Date.now() + 2000;
  while (Date.now() < until) await new Promise((ok) => setTimeout(ok, 100));
  await r2.read(MiB, part);
  await r2.close();
  assert.ok(shortLived.grants.renewals >= 1, 'renewed before use once the SAS was about to expire');
  assert.deepEqual((await control(emulator, 'GET', 'grants')).value, []);
});

test("Azure's limits: 5 SAS per snapshot family, 7 snapshots per disk per 5 minutes, 500 per disk", async () => {
  const { disk } = await fragmentedVm(emulator, 'lim-1', 4 * MiB, 1, MiB);
  const names = Array.from({ length: 7 }, (_, i) => `lim-${i}`);
  for (const name of names) await cloud.createSnapshot({ disk, name, tags: GOLDSNAP_TAGS });
  await assert.rejects(
    cloud.createSnapshot({ disk, name: 'lim-7', tags: GOLDSNAP_TAGS }),
    (err: unknown) =>
      err instanceof SnapshotLimitError &&
      err.limit === 'per-window' &&
      err.transient &&
      /disk lim-1-os .*7 incremental snapshots taken in the last 5 minutes/.test(err.message),
  );
  for (const name of names.slice(0, 5))
    await compute.snapshots.beginGrantAccessAndWait('rg-real', name, { access: 'Read', durationInSeconds: 600 }, FAST);
  await assert.rejects(
    compute.snapshots.beginGrantAccessAndWait('rg-real', names[5]!, { access: 'Read', durationInSeconds: 600 }, FAST),
    /At most 5 snapshots of an incremental snapshot family/,
  );
  await compute.snapshots.beginRevokeAccessAndWait('rg-real', names[0]!, FAST);
  await compute.snapshots.beginGrantAccessAndWait(
    'rg-real',
    names[5]!,
    { access: 'Read', durationInSeconds: 600 },
    FAST,
  );
  for (const name of names) await compute.snapshots.beginRevokeAccessAndWait('rg-real', name, FAST);
  for (const name of names) await cloud.deleteSnapshot(`${disk.id.replace(/disks\/[^/]+$/, 'snapshots/')}${name}`);

  const small = await startOne({ limits: { snapshotsPerDisk: 2 } });
  const d2 = (await fragmentedVm(small, 'lim-2', 4 * MiB, 1, MiB)).disk;
  const c2 = cloudOf(small);
  await c2.createSnapshot({ disk: d2, name: 'x-1', tags: GOLDSNAP_TAGS });
  await c2.createSnapshot({ disk: d2, name: 'x-2', tags: GOLDSNAP_TAGS });
  await assert.rejects(
    c2.createSnapshot({ disk: d2, name: 'x-3', tags: GOLDSNAP_TAGS }),
    (err: unknown) =>
      err instanceof SnapshotLimitError &&
      err.limit === 'per-disk' &&
      !err.transient &&
      /already has 2 incremental snapshots, the most Azure allows per disk/.test(err.message),
  );
});

test('diffs are refused across snapshot families and across a 4 TiB resize, not across a small resize', async () => {
  const mk = async (name: string, sizeGB: number) =>
    compute.disks.beginCreateOrUpdateAndWait(
      'rg-real',
      name,
      { location: 'westeurope', diskSizeGB: sizeGB, creationData: { createOption: 'Empty' } },
      FAST,
    );
  const asCloudDisk = (d: { id?: string; name?: string; diskSizeBytes?: number }) => ({
    id: d.id!,
    name: d.name!,
    region: 'westeurope',
    sizeBytes: d.diskSizeBytes!,
    role: 'data' as const,
  });
  const d1 = await mk('fam-1', 1);
  const s1 = await cloud.createSnapshot({ disk: asCloudDisk(d1), name: 'fam-a', tags: GOLDSNAP_TAGS });
  await compute.disks.beginDeleteAndWait('rg-real', 'fam-1', FAST);
  const again = await mk('fam-1', 1);
  assert.equal(again.id, d1.id, 'same name, same id: a new family all the same');
  const s2 = await cloud.createSnapshot({ disk: asCloudDisk(again), name: 'fam-b', tags: GOLDSNAP_TAGS });
  await assert.rejects(
    cloud.changedRanges(s1, s2),
    (err) => err instanceof DiffRefusedError && /another incremental snapshot family/.test(err.message),
  );

  const r = await mk('rsz-1', 1);
  const ra = await cloud.createSnapshot({ disk: asCloudDisk(r), name: 'rsz-a', tags: GOLDSNAP_TAGS });
  const grown = await compute.disks.beginUpdateAndWait('rg-real', 'rsz-1', { diskSizeGB: 2 }, FAST);
  const rb = await cloud.createSnapshot({
    disk: asCloudDisk(await compute.disks.get('rg-real', 'rsz-1')),
    name: 'rsz-b',
    tags: GOLDSNAP_TAGS,
  });
  void grown;
  assert.deepEqual(await cloud.changedRanges(ra, rb), [], 'a resize below 4 TiB keeps diffs');
  await compute.disks.beginUpdateAndWait('rg-real', 'rsz-1', { diskSizeGB: 4097 }, FAST);
  const rc = await cloud.createSnapshot({
    disk: asCloudDisk(await compute.disks.get('rg-real', 'rsz-1')),
    name: 'rsz-c',
    tags: GOLDSNAP_TAGS,
  });
  assert.equal(rc.sizeBytes, 4097 * 1024 * MiB);
  await assert.rejects(
    cloud.changedRanges(rb, rc),
    (err) => err instanceof DiffRefusedError && /resized across 4 TiB/.test(err.message),
  );
  assert.deepEqual((await control(emulator, 'GET', 'grants')).value, []);
});

test('locked-down disks: DenyAll fails with what to change, AzureActiveDirectory is read with the Entra token', async () => {
  const { disk } = await fragmentedVm(emulator, 'sec-1', 4 * MiB, 2, MiB);
  await compute.disks.beginUpdateAndWait('rg-real', 'sec-1-os', { networkAccessPolicy: 'DenyAll' }, FAST);
  const denied = await cloud.createSnapshot({ disk, name: 'sec-deny', tags: GOLDSNAP_TAGS });
  await assert.rejects(
    cloud.openSnapshot(denied),
    /cannot read snapshot sec-deny \(of disk sec-1-os\): its networkAccessPolicy is DenyAll.*Set networkAccessPolicy to AllowAll/,
  );
  await compute.disks.beginUpdateAndWait(
    'rg-real',
    'sec-1-os',
    { networkAccessPolicy: 'AllowAll', dataAccessAuthMode: 'AzureActiveDirectory' },
    FAST,
  );
  const aad = await cloud.createSnapshot({ disk, name: 'sec-aad', tags: GOLDSNAP_TAGS });
  const { accessSAS } = await compute.snapshots.beginGrantAccessAndWait(
    'rg-real',
    'sec-aad',
    { access: 'Read', durationInSeconds: 600 },
    FAST,
  );
  const anonymous = new PageBlobClient(
    accessSAS!,
    new AnonymousCredential(),
    emulatorClientOptions(emulator.connectionInfo()).blob,
  );
  await assert.rejects(anonymous.getProperties(), (err: any) => err.statusCode === 401, 'the SAS alone is not enough');
  await compute.snapshots.beginRevokeAccessAndWait('rg-real', 'sec-aad', FAST);
  assert.ok(
    (await readAll(cloud, aad)).equals(await emulator.control.readDisk(disk.id)),
    'the adapter reads it with its credential',
  );
});

test('under a seeded fault profile the adapter reads bit for bit and every fault is retried', async () => {
  const faulty = await startOne({ faults: 'seed=42,throttle=0.15,busy=0.1,timeout=0.05,drop=0.3,retry-after=0' });
  const { disk } = await fragmentedVm(faulty, 'flt-1', 16 * MiB, 16, MiB);
  const c = cloudOf(faulty);
  const s = await c.createSnapshot({ disk, name: 'flt-a', tags: GOLDSNAP_TAGS });
  await c.waitForSnapshot(s.id);
  const reader = await c.openSnapshot(s);
  const out = Buffer.alloc(s.sizeBytes);
  for (let o = 0; o < s.sizeBytes; o += MiB) await reader.read(o, out.subarray(o, o + MiB));
  await reader.close();
  assert.ok(out.equals(await faulty.control.readDisk(disk.id)));
  assert.equal((await c.allocatedRanges(s)).length, 16);
  await c.deleteSnapshot(s.id);
  const f = faulty.faults!.figures();
  assert.ok(f.injected.throttle + f.injected.busy + f.injected.timeout + f.injected.drop > 0, JSON.stringify(f));
  assert.ok(f.retries > 0, JSON.stringify(f));
  assert.deepEqual((await control(faulty, 'GET', 'grants')).value, []);
});

test('Premium SSD v2 snapshots: readable at completionPercent 100, at most 3 copying per disk', async () => {
  for (const copyMs of [120_000, 1000]) {
    const emu = await startOne({ limits: { backgroundCopyMs: copyMs } });
    const c = cloudOf(emu);
    const o = emulatorClientOptions(emu.connectionInfo());
    const arm = new ComputeManagementClient(o.credential, o.subscriptionId, o.compute);
    const d = await arm.disks.beginCreateOrUpdateAndWait(
      'rg-v2',
      'v2-1',
      {
        location: 'westeurope',
        sku: { name: 'PremiumV2_LRS' },
        diskSizeGB: 1,
        creationData: { createOption: 'Empty' },
      },
      FAST,
    );
    const disk = { id: d.id!, name: d.name!, region: 'westeurope', sizeBytes: d.diskSizeBytes!, role: 'data' as const };
    if (copyMs > 60_000) {
      const first = await c.createSnapshot({ disk, name: 'v2-a', tags: GOLDSNAP_TAGS });
      await c.createSnapshot({ disk, name: 'v2-b', tags: GOLDSNAP_TAGS });
      await c.createSnapshot({ disk, name: 'v2-c', tags: GOLDSNAP_TAGS });
      await assert.rejects(
        c.createSnapshot({ disk, name: 'v2-d', tags: GOLDSNAP_TAGS }),
        (err: unknown) =>
          err instanceof SnapshotLimitError &&
          err.limit === 'pending-copies' &&
          err.transient &&
          /3 snapshots whose background copy is not complete/.test(err.message),
      );
      assert.ok(((await arm.snapshots.get('rg-v2', 'v2-a')).completionPercent ?? 100) < 100, 'still copying');
      await assert.rejects(c.openSnapshot(first), /until its background copy completes/);
    } else {
      const s = await c.createSnapshot({ disk, name: 'v2-a', tags: GOLDSNAP_TAGS });
      await c.waitForSnapshot(s.id);
      assert.equal((await arm.snapshots.get('rg-v2', 'v2-a')).completionPercent, 100);
      assert.deepEqual(await c.allocatedRanges(s), [], 'readable once copied');
    }
  }
});

test('the route table answers unknown methods and resource types as ARM does', async () => {
  const call = (method: string, path: string) =>
    new Promise<{ status: number; code: string }>((resolve, reject) => {
      const req = request(
        new URL(`${path}?api-version=2024-03-02`, emulator.armEndpoint),
        { method, ca: emulator.caCertPem, headers: { authorization: `Bearer ${emulator.token}` } },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, code: JSON.parse(Buffer.concat(parts).toString()).error.code }),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
  const rg = `/subscriptions/${emulator.subscriptionId}/resourceGroups/rg-real/providers/Microsoft.Compute`;
  assert.deepEqual(await call('PATCH', `${rg}/snapshots/none`), { status: 405, code: 'MethodNotAllowed' });
  assert.deepEqual(await call('GET', `${rg}/galleries/none`), { status: 404, code: 'InvalidResourceType' });
  assert.deepEqual(
    await call(
      'GET',
      `${rg.toUpperCase().replace(emulator.subscriptionId.toUpperCase(), emulator.subscriptionId)}/DISKS/none`,
    ),
    { status: 404, code: 'ResourceNotFound' },
    'paths are case-insensitive',
  );
});

test('the adapter never holds more than 5 SAS of one snapshot family: a sixth reader waits for a place', async () => {
  const emu = await startOne();
  const c = cloudOf(emu);
  const { disk } = await fragmentedVm(emu, 'fam-6', 4 * MiB, 2, MiB);
  const snaps: CloudSnapshot[] = [];
  for (let i = 0; i < 6; i++) snaps.push(await c.createSnapshot({ disk, name: `six-${i}`, tags: GOLDSNAP_TAGS }));
  const readers = await Promise.all(snaps.slice(0, 5).map((s) => c.openSnapshot(s)));
  const sixth = c.openSnapshot(snaps[5]!);
  assert.equal((await control(emu, 'GET', 'grants')).value.length, 5, 'Azure would refuse a sixth');
  await readers[0]!.close();
  const r6 = await sixth;
  const buf = Buffer.alloc(4096);
  await r6.read(0, buf);
  for (const r of [...readers.slice(1), r6]) await r.close();
  assert.deepEqual((await control(emu, 'GET', 'grants')).value, []);
});

test('a SAS refused because another process holds 5 in the family is asked again after a back-off, not failed', async () => {
  const emu = await startOne();
  const c = cloudOf(emu);
  const o = emulatorClientOptions(emu.connectionInfo());
  const other = new ComputeManagementClient(o.credential, o.subscriptionId, o.compute);
  const { disk } = await fragmentedVm(emu, 'fam-x', 4 * MiB, 2, MiB);
  const snaps: CloudSnapshot[] = [];
  for (let i = 0; i < 6; i++) snaps.push(await c.createSnapshot({ disk, name: `ext-${i}`, tags: GOLDSNAP_TAGS }));
  // Another process (its own clients) holds a SAS on five of the family.
  for (const s of snaps.slice(0, 5))
    await other.snapshots.beginGrantAccessAndWait('rg-real', s.name, { access: 'Read', durationInSeconds: 600 }, FAST);

  // With no time to wait, the read fails saying what holds it and what to do.
  await assert.rejects(
    cloudOf(emu, { familySasWaitMs: 0 }).openSnapshot(snaps[5]!),
    /cannot read snapshot ext-5 \(of disk fam-x-os\): Azure allows a SAS on at most 5 snapshots .* revoke access \(endGetAccess\)/,
  );

  const opening = c.openSnapshot(snaps[5]!);
  let failed: unknown;
  opening.catch((err: unknown) => {
    failed = err;
  });
  // Refused at least once (the other process still holds five)...
  while (c.familySasRetries === 0 && failed === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(failed, undefined, 'a refused SAS is not a failed read');
  // ...and granted once the other process lets one go.
  await other.snapshots.beginRevokeAccessAndWait('rg-real', snaps[0]!.name, FAST);
  const reader = await opening;
  const buf = Buffer.alloc(4096);
  await reader.read(MiB, buf);
  assert.ok(
    buf.some((b) => b !== 0),
    'the written block is read',
  );
  await reader.close();
  for (const s of snaps.slice(1, 5)) await other.snapshots.beginRevokeAccessAndWait('rg-real', s.name, FAST);
  assert.deepEqual((await control(emu, 'GET', 'grants')).value, []);
});

test('host-style SAS URLs as Azure gives them are read through the adapter with no DNS entry', async () => {
  const emu = await startOne({ hostStyleSas: true });
  const c = cloudOf(emu);
  const o = emulatorClientOptions(emu.connectionInfo());
  const other = new ComputeManagementClient(o.credential, o.subscriptionId, o.compute);
  const { disk } = await fragmentedVm(emu, 'hs-1', 4 * MiB, 3, MiB);
  const base = await c.createSnapshot({ disk, name: 'hs-a', tags: GOLDSNAP_TAGS });
  const { accessSAS } = await other.snapshots.beginGrantAccessAndWait(
    'rg-real',
    'hs-a',
    { access: 'Read', durationInSeconds: 600 },
    FAST,
  );
  assert.match(
    accessSAS!,
    /^https:\/\/md-[a-z0-9]+\.blob\.storage\.azure\.net\/[a-z0-9]+\/abcd\?sv=[^&]+&sr=b&si=[^&]+&.*sig=/,
  );
  await other.snapshots.beginRevokeAccessAndWait('rg-real', 'hs-a', FAST);

  await emu.control.writeToVm('hs-1', {
    writes: [{ diskName: 'hs-1-os', offset: 2 * MiB + 8192, length: 4096, pattern: 'random' }],
  });
  const next = await c.createSnapshot({ disk, name: 'hs-b', tags: GOLDSNAP_TAGS });
  assert.equal((await c.allocatedRanges(next)).reduce((n, r) => n + r.length, 0) > 0, true);
  const changed = await c.changedRanges(base, next);
  assert.ok(
    changed.some((r) => r.offset <= 2 * MiB + 8192 && r.offset + r.length >= 2 * MiB + 12288),
    JSON.stringify(changed),
  );
  const content = await readAll(c, next);
  assert.ok(content.equals(await emu.control.readDisk(next.id)), 'bit for bit through the host-style URL');
  // And written back through a host-style write SAS (a restore).
  const { disk: restored, writer } = await c.createDiskForRestore({
    name: 'hs-restored',
    region: 'westeurope',
    resourceGroup: 'rg-real',
    sizeBytes: 4 * MiB,
    tags: GOLDSNAP_TAGS,
  });
  await writer.write(0, content);
  await writer.commit();
  assert.ok((await emu.control.readDisk(restored.id)).equals(content), 'written bit for bit');
  assert.deepEqual((await control(emu, 'GET', 'grants')).value, []);
});
