import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { ArmError, GiB, normalizeLocation, obj, tagsOf, validName, type ArmResult, type EmulatorCore } from './core.ts';
import {
  keyOf,
  type DiskRestorePointRec,
  type GrantRec,
  type RestorePointCollectionRec,
  type RestorePointRec,
} from './state.ts';

/**
 * VM restore points as Azure has them (learn.microsoft.com/azure/virtual-machines/concepts-restore-points):
 * a restore point collection per VM, restore points in it (`consistencyMode` CrashConsistent or
 * ApplicationConsistent), and in each a disk restore point per disk, readable through
 * beginGetAccess/endGetAccess like a snapshot and diffable against an earlier one of the same disk.
 *
 * All disks of the VM are copied under the emulator's one lock, which the simulated VM's writes take
 * too: a restore point is one instant of the whole VM, whatever the VM is writing meanwhile.
 */

/** Azure keeps at most 500 restore points per VM. */
export const MAX_RESTORE_POINTS_PER_VM = 500;
const COLLECTION_TYPE = 'Microsoft.Compute/restorePointCollections';
/** Disk SKUs whose VMs cannot have restore points (concepts-restore-points: limitations). */
const UNSUPPORTED_SKUS = ['UltraSSD_LRS', 'PremiumV2_LRS'];

export interface RestorePointRequest {
  method: string;
  /** Resource group, or undefined for the subscription-wide list. */
  resourceGroup?: string;
  /** Path segments after `restorePointCollections` (names and sub-resource types). */
  path: string[];
  expand?: string | null;
  body: () => Promise<unknown>;
}

function tables(core: EmulatorCore) {
  const st = core.st;
  st.restorePointCollections ??= {};
  st.restorePoints ??= {};
  st.diskRestorePoints ??= {};
  return { collections: st.restorePointCollections, points: st.restorePoints, disks: st.diskRestorePoints };
}

function notFound(what: string, name: string, rg: string): ArmError {
  return new ArmError(
    404,
    'ResourceNotFound',
    `The Resource '${what}/${name}' under resource group '${rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );
}

function collectionId(core: EmulatorCore, rg: string, name: string): string {
  return core.resourceId(rg, 'restorePointCollections', name);
}

function renderCollection(
  core: EmulatorCore,
  c: RestorePointCollectionRec,
  withPoints: boolean,
): Record<string, unknown> {
  const t = tables(core);
  const props: Record<string, unknown> = {
    source: { id: c.sourceVmId, location: c.location },
    restorePointCollectionId: c.collectionId,
    provisioningState: 'Succeeded',
  };
  if (withPoints)
    props['restorePoints'] = Object.values(t.points)
      .filter((p) => p.collectionKey === keyOf(c.id))
      .map((p) => renderPoint(core, p));
  return { name: c.name, id: c.id, type: COLLECTION_TYPE, location: c.location, tags: c.tags, properties: props };
}

function renderPoint(_core: EmulatorCore, p: RestorePointRec): Record<string, unknown> {
  return {
    name: p.name,
    id: p.id,
    type: `${COLLECTION_TYPE}/restorePoints`,
    properties: {
      excludeDisks: [],
      sourceMetadata: p.sourceMetadata,
      provisioningState: Date.now() >= p.readyAt ? 'Succeeded' : 'Creating',
      consistencyMode: p.consistencyMode,
      timeCreated: p.timeCreated,
    },
  };
}

function renderDiskPoint(core: EmulatorCore, d: DiskRestorePointRec): Record<string, unknown> {
  const access = core.activeAccess(keyOf(d.id));
  return {
    name: d.name,
    id: d.id,
    type: `${COLLECTION_TYPE}/restorePoints/diskRestorePoints`,
    properties: {
      timeCreated: d.timeCreated,
      sourceResourceId: d.sourceDiskId,
      ...(d.osType ? { osType: d.osType } : {}),
      ...(d.hyperVGeneration ? { hyperVGeneration: d.hyperVGeneration } : {}),
      ...(d.securityType ? { securityProfile: { securityType: d.securityType } } : {}),
      familyId: d.family,
      sourceUniqueId: String(d.creationData['sourceUniqueId'] ?? ''),
      encryption: { type: 'EncryptionAtRestWithPlatformKey' },
      networkAccessPolicy: 'AllowAll',
      publicNetworkAccess: 'Enabled',
      completionPercent: 100,
      replicationState: 'Succeeded',
      sourceResourceLocation: d.location,
      ...(access ? { diskState: 'ActiveSAS' } : {}),
    },
  };
}

function getCollection(core: EmulatorCore, rg: string, name: string): RestorePointCollectionRec {
  const c = tables(core).collections[keyOf(collectionId(core, rg, name))];
  if (!c) throw notFound(COLLECTION_TYPE, name, rg);
  return c;
}

function getPoint(core: EmulatorCore, c: RestorePointCollectionRec, name: string): RestorePointRec {
  const p = tables(core).points[keyOf(`${c.id}/restorePoints/${name}`)];
  if (!p) throw notFound(`${COLLECTION_TYPE}/restorePoints`, `${c.name}/${name}`, c.resourceGroup);
  return p;
}

function getDiskPoint(core: EmulatorCore, p: RestorePointRec, name: string): DiskRestorePointRec {
  const d = tables(core).disks[keyOf(`${p.id}/diskRestorePoints/${name}`)];
  if (!d)
    throw new ArmError(
      404,
      'ResourceNotFound',
      `The disk restore point '${name}' of restore point '${p.name}' was not found.`,
    );
  return d;
}

async function putCollection(core: EmulatorCore, rg: string, name: string, body: unknown): Promise<ArmResult> {
  validName(name, COLLECTION_TYPE);
  const b = obj(body, 'parameters');
  const location = normalizeLocation(b['location']);
  const tags = tagsOf(b['tags']);
  const props = (b['properties'] ?? {}) as Record<string, unknown>;
  const sourceId = (props['source'] as { id?: unknown } | undefined)?.id;
  const id = collectionId(core, rg, name);
  const t = tables(core);
  const existing = t.collections[keyOf(id)];
  if (existing) {
    if (typeof sourceId === 'string' && keyOf(sourceId) !== keyOf(existing.sourceVmId)) {
      throw new ArmError(409, 'PropertyChangeNotAllowed', "Changing property 'source.id' is not allowed.");
    }
    existing.tags = tags;
    await core.save();
    return { status: 200, body: renderCollection(core, existing, false) };
  }
  if (typeof sourceId !== 'string')
    throw new ArmError(400, 'InvalidParameter', "Required parameter 'properties.source.id' is missing (null).");
  const vm = core.st.virtualMachines[keyOf(sourceId)];
  if (!vm) throw new ArmError(404, 'NotFound', `Virtual machine '${sourceId}' was not found.`);
  if (vm.location !== location)
    throw new ArmError(
      400,
      'InvalidParameter',
      `The restore point collection must be in the location of its source VM ('${vm.location}'), not '${location}'.`,
    );
  const rec: RestorePointCollectionRec = {
    id,
    name,
    resourceGroup: rg,
    location,
    tags,
    sourceVmId: vm.id,
    collectionId: randomUUID(),
  };
  t.collections[keyOf(id)] = rec;
  await core.save();
  return { status: 201, body: renderCollection(core, rec, false) };
}

/** Refuses to delete a restore point whose disk restore points are being read (as Azure does). */
function assertNoAccess(core: EmulatorCore, p: RestorePointRec): void {
  for (const k of p.diskKeys) {
    if (core.activeAccess(k)) {
      const d = tables(core).disks[k];
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Disk restore point ${d?.name ?? k} is currently being accessed via SAS. Call endGetAccess first.`,
      );
    }
  }
}

/** Drops a restore point and its disk restore points (the caller has checked no SAS is open). */
function dropPoint(core: EmulatorCore, p: RestorePointRec): string[] {
  const t = tables(core);
  const contents: string[] = [];
  for (const k of p.diskKeys) {
    const d = t.disks[k];
    if (d) contents.push(d.contentId);
    delete t.disks[k];
    for (const [gid, g] of Object.entries(core.st.grants)) if (g.resourceKey === k) delete core.st.grants[gid];
  }
  delete t.points[keyOf(p.id)];
  return contents;
}

async function deleteCollection(core: EmulatorCore, rg: string, name: string): Promise<ArmResult> {
  const t = tables(core);
  const c = t.collections[keyOf(collectionId(core, rg, name))];
  if (!c) return { status: 204 };
  const points = Object.values(t.points).filter((p) => p.collectionKey === keyOf(c.id));
  for (const p of points) assertNoAccess(core, p);
  const contents = points.flatMap((p) => dropPoint(core, p));
  delete t.collections[keyOf(c.id)];
  const op = core.newOperation(c.location, 'vm', core.timings.delete);
  await core.save();
  for (const id of contents) await core.store.delete(id);
  return { status: 202, operation: op, location: true };
}

/** Creates a restore point: every disk of the VM copied at one instant (the caller holds the lock). */
async function putPoint(
  core: EmulatorCore,
  c: RestorePointCollectionRec,
  name: string,
  body: unknown,
): Promise<ArmResult> {
  validName(name, `${COLLECTION_TYPE}/restorePoints`);
  const t = tables(core);
  const id = `${c.id}/restorePoints/${name}`;
  const existing = t.points[keyOf(id)];
  if (existing) return { status: 200, body: renderPoint(core, existing) };
  const props = ((body as Record<string, unknown> | undefined)?.['properties'] ?? {}) as Record<string, unknown>;
  const mode = props['consistencyMode'] ?? 'ApplicationConsistent';
  if (mode !== 'CrashConsistent' && mode !== 'ApplicationConsistent') {
    throw new ArmError(
      400,
      'InvalidParameter',
      `The value '${String(mode)}' of parameter 'consistencyMode' is invalid (CrashConsistent, ApplicationConsistent).`,
    );
  }
  const vm = core.st.virtualMachines[keyOf(c.sourceVmId)];
  if (!vm)
    throw new ArmError(
      409,
      'OperationNotAllowed',
      `The source VM '${c.sourceVmId}' of restore point collection '${c.name}' no longer exists.`,
    );
  const count = Object.values(t.points).filter((p) => p.collectionKey === keyOf(c.id)).length;
  if (count >= MAX_RESTORE_POINTS_PER_VM) {
    throw new ArmError(
      409,
      'OperationNotAllowed',
      `VM '${vm.name}' already has ${count} restore points, the most Azure allows (${MAX_RESTORE_POINTS_PER_VM}). Delete older ones first.`,
    );
  }
  const excluded = new Set(((props['excludeDisks'] ?? []) as { id?: string }[]).map((d) => keyOf(String(d.id))));
  const refs = [
    { id: vm.osDiskId, lun: undefined as number | undefined },
    ...vm.dataDisks.map((d) => ({ id: d.diskId, lun: d.lun as number | undefined })),
  ].filter((r, i) => i === 0 || !excluded.has(keyOf(r.id)));
  const sources = refs.map((r) => {
    const d = core.st.disks[keyOf(r.id)];
    if (!d) throw new ArmError(409, 'OperationNotAllowed', `Disk '${r.id}' of VM '${vm.name}' no longer exists.`);
    if (UNSUPPORTED_SKUS.includes(d.skuName)) {
      throw new ArmError(
        400,
        'OperationNotAllowed',
        `Restore points are not supported for VMs with ${d.skuName} disks (disk '${d.name}'). Use snapshots of each disk instead.`,
      );
    }
    return { ref: r, disk: d };
  });
  const now = new Date().toISOString();
  const drps: DiskRestorePointRec[] = [];
  try {
    // One instant: every copy is made here, under the lock the VM's writes also take.
    for (const { disk } of sources) {
      const drpName = `${disk.name}_${randomUUID()}`;
      drps.push({
        id: `${id}/diskRestorePoints/${drpName}`,
        name: drpName,
        resourceGroup: c.resourceGroup,
        location: disk.location,
        tags: {},
        skuName: disk.skuName,
        sizeBytes: disk.sizeBytes,
        contentId: await core.store.create(disk.contentId),
        uniqueId: randomUUID(),
        timeCreated: now,
        readyAt: 0,
        creationData: { createOption: 'Copy', sourceResourceId: disk.id, sourceUniqueId: disk.uniqueId },
        family: disk.family,
        restorePointKey: keyOf(id),
        sourceDiskId: disk.id,
        ...(disk.osType ? { osType: disk.osType } : {}),
        ...(disk.hyperVGeneration ? { hyperVGeneration: disk.hyperVGeneration } : {}),
        ...(disk.securityType ? { securityType: disk.securityType } : {}),
      });
    }
  } catch (err) {
    for (const d of drps) await core.store.delete(d.contentId);
    throw err;
  }
  const diskMeta = (i: number) => {
    const { disk } = sources[i]!;
    return {
      name: disk.name,
      diskSizeGB: Math.max(1, Math.ceil(disk.sizeBytes / GiB)),
      caching: i === 0 ? 'ReadWrite' : 'None',
      managedDisk: { id: disk.id, storageAccountType: disk.skuName },
      diskRestorePoint: { id: drps[i]!.id },
    };
  };
  const os = core.st.disks[keyOf(vm.osDiskId)];
  const rec: RestorePointRec = {
    id,
    name,
    collectionKey: keyOf(c.id),
    consistencyMode: mode,
    timeCreated: now,
    readyAt: Date.now() + core.timings.snapshot,
    diskKeys: drps.map((d) => keyOf(d.id)),
    sourceMetadata: {
      vmId: vm.vmId,
      location: vm.location,
      hardwareProfile: { vmSize: vm.vmSize },
      ...(os?.hyperVGeneration ? { hyperVGeneration: os.hyperVGeneration } : {}),
      ...(vm.securityType ? { securityProfile: { securityType: vm.securityType } } : {}),
      storageProfile: {
        osDisk: { osType: os?.osType ?? vm.osType, ...diskMeta(0) },
        dataDisks: sources.slice(1).map((s, i) => ({ lun: s.ref.lun, ...diskMeta(i + 1) })),
      },
    },
  };
  for (const d of drps) t.disks[keyOf(d.id)] = d;
  t.points[keyOf(id)] = rec;
  const op = core.newOperation(c.location, 'vm', core.timings.snapshot, undefined, id);
  try {
    await core.save();
  } catch (err) {
    dropPoint(core, rec);
    for (const d of drps) await core.store.delete(d.contentId);
    throw err;
  }
  return { status: 201, body: renderPoint(core, rec), operation: op, location: false };
}

async function deletePoint(core: EmulatorCore, c: RestorePointCollectionRec, name: string): Promise<ArmResult> {
  const p = tables(core).points[keyOf(`${c.id}/restorePoints/${name}`)];
  if (!p) return { status: 204 };
  assertNoAccess(core, p);
  const contents = dropPoint(core, p);
  const op = core.newOperation(c.location, 'vm', core.timings.delete);
  await core.save();
  for (const id of contents) await core.store.delete(id);
  return { status: 202, operation: op, location: true };
}

async function grantDiskPoint(
  core: EmulatorCore,
  p: RestorePointRec,
  d: DiskRestorePointRec,
  body: unknown,
): Promise<ArmResult> {
  const b = obj(body, 'grantAccessData');
  const access = b['access'];
  const duration = b['durationInSeconds'];
  if (access !== 'Read')
    throw new ArmError(
      400,
      'InvalidParameter',
      `The value '${String(access)}' of parameter 'grantAccessData.access' is invalid: disk restore points can only be read.`,
    );
  if (typeof duration !== 'number' || !Number.isInteger(duration) || duration < 1 || duration > 5 * 86400) {
    throw new ArmError(
      400,
      'InvalidParameter',
      `The value '${String(duration)}' of parameter 'grantAccessData.durationInSeconds' is invalid.`,
    );
  }
  if (Date.now() < p.readyAt)
    throw new ArmError(409, 'OperationNotAllowed', `Restore point ${p.name} is still being created.`);
  const startsOn = new Date();
  const grant: GrantRec = {
    id: randomBytes(8).toString('hex'),
    resourceKey: keyOf(d.id),
    kind: 'diskRestorePoints',
    access: 'Read',
    account: `md-${createHmac('sha256', 'acct').update(d.uniqueId).digest('hex').slice(0, 12)}`,
    container: createHmac('sha256', 'cont').update(d.uniqueId).digest('hex').slice(0, 12),
    startsOn: startsOn.toISOString().replace(/\.\d+Z$/, 'Z'),
    expiresOn: new Date(startsOn.getTime() + duration * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
  };
  core.st.grants[grant.id] = grant;
  const op = core.newOperation(d.location, 'disk', core.timings.access, { accessSAS: core.sasUrl(grant) });
  await core.save();
  return { status: 202, operation: op, location: true };
}

async function revokeDiskPoint(core: EmulatorCore, d: DiskRestorePointRec): Promise<ArmResult> {
  for (const [gid, g] of Object.entries(core.st.grants)) if (g.resourceKey === keyOf(d.id)) delete core.st.grants[gid];
  const op = core.newOperation(d.location, 'disk', core.timings.access);
  await core.save();
  return { status: 202, operation: op, location: true };
}

/**
 * Answers a request under .../restorePointCollections. Reads need no lock; every change takes the
 * emulator's lock (a restore point's copies of all disks are made inside it).
 */
export async function handleRestorePoints(core: EmulatorCore, req: RestorePointRequest): Promise<ArmResult> {
  const { method, resourceGroup: rg, path } = req;
  const t = tables(core);
  const unsupported = () => new ArmError(405, 'MethodNotAllowed', `${method} is not supported here`);
  if (rg === undefined || path.length === 0) {
    if (method !== 'GET' || path.length) throw unsupported();
    const all = Object.values(t.collections)
      .filter((c) => c.id.toLowerCase().startsWith(`/subscriptions/${core.subscriptionId.toLowerCase()}/`))
      .filter((c) => rg === undefined || c.resourceGroup.toLowerCase() === rg.toLowerCase());
    return { status: 200, body: { value: all.map((c) => renderCollection(core, c, false)) } };
  }
  const [cName, sub1, pName, sub2, dName, action] = path as [string, ...(string | undefined)[]];
  if (path.length === 1) {
    if (method === 'GET')
      return {
        status: 200,
        body: renderCollection(core, getCollection(core, rg, cName), req.expand === 'restorePoints'),
      };
    if (method === 'PUT') {
      const body = await req.body();
      return core.exclusive(() => putCollection(core, rg, cName, body));
    }
    if (method === 'DELETE') return core.exclusive(() => deleteCollection(core, rg, cName));
    throw unsupported();
  }
  if (sub1?.toLowerCase() !== 'restorepoints' || !pName)
    throw new ArmError(404, 'NotFound', `No route for ${method} .../restorePointCollections/${path.join('/')}`);
  if (path.length === 3) {
    if (method === 'GET')
      return { status: 200, body: renderPoint(core, getPoint(core, getCollection(core, rg, cName), pName)) };
    if (method === 'PUT') {
      const body = await req.body();
      return core.exclusive(async () => putPoint(core, getCollection(core, rg, cName), pName, body));
    }
    if (method === 'DELETE')
      return core.exclusive(async () => deletePoint(core, getCollection(core, rg, cName), pName));
    throw unsupported();
  }
  if (sub2?.toLowerCase() !== 'diskrestorepoints')
    throw new ArmError(404, 'NotFound', `No route for ${method} .../restorePointCollections/${path.join('/')}`);
  const point = getPoint(core, getCollection(core, rg, cName), pName);
  if (path.length === 4) {
    if (method !== 'GET') throw unsupported();
    return {
      status: 200,
      body: {
        value: point.diskKeys
          .map((k) => t.disks[k])
          .filter((d) => d !== undefined)
          .map((d) => renderDiskPoint(core, d)),
      },
    };
  }
  const disk = getDiskPoint(core, point, dName!);
  if (path.length === 5 && method === 'GET') return { status: 200, body: renderDiskPoint(core, disk) };
  if (path.length === 6 && method === 'POST' && action?.toLowerCase() === 'begingetaccess') {
    const body = await req.body();
    return core.exclusive(() => grantDiskPoint(core, point, disk, body));
  }
  if (path.length === 6 && method === 'POST' && action?.toLowerCase() === 'endgetaccess') {
    await req.body();
    return core.exclusive(() => revokeDiskPoint(core, disk));
  }
  throw unsupported();
}
