import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { ExtentStore, PageWrite, Range } from './extent-store.ts';
import type { StateFile } from './state-file.ts';
import { Mutex } from '../util/mutex.ts';
import { currentSubscription, inCurrentSubscription } from './subscriptions.ts';
import { AZURE_LIMITS, BACKGROUND_COPY_SKUS, type AzureLimits } from './limits.ts';
import { SAS_HOST_SUFFIX } from './host-style-sas.ts';
import { checkNewDisk, checkNewVm, zoneOf } from './vm-rules.ts';
import {
  keyOf,
  type Access,
  type ContentRec,
  type DiskRec,
  type DiskRestorePointRec,
  type EmulatorState,
  type GrantRec,
  type OperationRec,
  type SnapshotRec,
  type VmRec,
} from './state.ts';

export const API_VERSION_DEFAULT = '2025-01-02';
export const GiB = 1024 * 1024 * 1024;
export const BLOB_NAME = 'abcd';
export const PAGE = 512;

/** Regions the emulator accepts (normalized names). */
export const REGIONS = [
  'westeurope',
  'northeurope',
  'eastus',
  'eastus2',
  'westus',
  'westus2',
  'westus3',
  'centralus',
  'southcentralus',
  'northcentralus',
  'uksouth',
  'ukwest',
  'francecentral',
  'germanywestcentral',
  'swedencentral',
  'switzerlandnorth',
  'norwayeast',
  'japaneast',
  'australiaeast',
  'southeastasia',
  'eastasia',
  'canadacentral',
  'brazilsouth',
  'centralindia',
  'koreacentral',
];

/** An error with an HTTP status and an Azure error code; the subclass says how it is rendered. */
abstract class CodedError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** An ARM error: rendered as {error:{code,message}} with the HTTP status. */
export class ArmError extends CodedError {}

/** A storage (data plane) error: rendered as XML <Error><Code/> with x-ms-error-code. */
export class StorageError extends CodedError {}

/** Delays (ms) after which long-running operations report Succeeded. */
export interface OperationTimings {
  snapshot: number;
  disk: number;
  vm: number;
  access: number;
  delete: number;
}

export const DEFAULT_TIMINGS: OperationTimings = { snapshot: 100, disk: 60, vm: 150, access: 50, delete: 50 };

/** Result of a mutating ARM call: how the HTTP layer should answer. */
export interface ArmResult {
  status: number;
  body?: unknown;
  /** Long-running: answer with Azure-AsyncOperation (and Location when `location` is set). */
  operation?: OperationRec;
  location?: boolean;
}

export interface SasTarget {
  grant: GrantRec;
  kind: 'disks' | 'snapshots' | 'diskRestorePoints';
  rec: DiskRec | SnapshotRec | DiskRestorePointRec;
}

export function normalizeLocation(loc: unknown): string {
  if (typeof loc !== 'string' || !loc.trim())
    throw new ArmError(400, 'LocationRequired', 'The location property is required for this definition.');
  const n = loc.replace(/\s+/g, '').toLowerCase();
  if (!REGIONS.includes(n)) {
    throw new ArmError(
      400,
      'LocationNotAvailableForResourceType',
      `The provided location '${loc}' is not available for resource type 'Microsoft.Compute'. List of available regions: '${REGIONS.join(',')}'.`,
    );
  }
  return n;
}

export function validName(name: string, what: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$/.test(name) || name.endsWith('.')) {
    throw new ArmError(400, 'InvalidResourceName', `The resource name '${name}' is not valid for ${what}.`);
  }
}

export function tagsOf(v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v))
    throw new ArmError(400, 'InvalidParameter', "The value of parameter 'tags' is invalid.");
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (typeof val !== 'string')
      throw new ArmError(400, 'InvalidParameter', `The value of tag '${k}' must be a string.`);
    out[k] = val;
  }
  return out;
}

export function obj(v: unknown, what: string): Record<string, unknown> {
  if (v === undefined || v === null)
    throw new ArmError(400, 'InvalidParameter', `Required parameter '${what}' is missing (null).`);
  if (typeof v !== 'object' || Array.isArray(v))
    throw new ArmError(400, 'InvalidParameter', `The value of parameter '${what}' is invalid.`);
  return v as Record<string, unknown>;
}

/** Parses a Microsoft.Compute resource id: returns rg, type and name. */
export function parseResourceId(
  id: string,
  subscriptionId: string,
): { resourceGroup: string; type: string; name: string } | undefined {
  const m =
    /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/(disks|snapshots|virtualMachines)\/([^/]+)$/i.exec(
      id,
    );
  if (!m || m[1]!.toLowerCase() !== subscriptionId.toLowerCase()) return undefined;
  const type = (
    { disks: 'disks', snapshots: 'snapshots', virtualmachines: 'virtualMachines' } as Record<string, string>
  )[m[3]!.toLowerCase()]!;
  return { resourceGroup: m[2]!, type, name: m[4]! };
}

const VHD_FOOTER = 512;

/** True if `f` is a fixed-VHD footer ("conectix", disk type 2) describing `rawBytes` of data. */
export function isFixedVhdFooter(f: Buffer, rawBytes: number): boolean {
  return (
    f.length === VHD_FOOTER &&
    f.toString('latin1', 0, 8) === 'conectix' &&
    f.readUInt32BE(60) === 2 &&
    Number(f.readBigUInt64BE(48)) === rawBytes
  );
}

export class EmulatorCore {
  readonly dataDir: string;
  readonly stateFile: StateFile;
  readonly st: EmulatorState;
  readonly store: ExtentStore;
  readonly timings: OperationTimings;
  readonly limits: AzureLimits;
  /** Base URL (https://host:port) used in ids of operations and SAS URLs. */
  baseUrl = '';
  /** SAS URLs host-style, as Azure's (host-style-sas.ts). */
  hostStyleSas = false;
  readonly mutex = new Mutex();
  #contentVersion = new Map<string, number>();
  #prunedAt = 0;

  constructor(
    stateFile: StateFile,
    st: EmulatorState,
    store: ExtentStore,
    timings: OperationTimings,
    limits: AzureLimits = AZURE_LIMITS,
  ) {
    this.dataDir = stateFile.dataDir;
    this.stateFile = stateFile;
    this.st = st;
    this.store = store;
    this.timings = timings;
    this.limits = limits;
  }

  /** Content ids referenced by the state (for the store's start-up sweep). */
  static liveContent(st: EmulatorState): Set<string> {
    const s = new Set<string>();
    for (const d of Object.values(st.disks)) s.add(d.contentId);
    for (const d of Object.values(st.snapshots)) s.add(d.contentId);
    for (const d of Object.values(st.diskRestorePoints ?? {})) s.add(d.contentId);
    return s;
  }

  async save(): Promise<void> {
    const now = Date.now();
    // Operations and grants are forgotten an hour after they end; looking once a minute is enough
    // (looking at every save made each save cost the number of operations).
    if (now - this.#prunedAt >= 60_000) {
      this.#prunedAt = now;
      for (const [id, op] of Object.entries(this.st.operations))
        if (op.doneAt < now - 3600_000) delete this.st.operations[id];
      for (const [id, g] of Object.entries(this.st.grants))
        if (Date.parse(g.expiresOn) < now - 3600_000) delete this.st.grants[id];
    }
    await this.stateFile.save(this.st);
  }

  /** Runs a mutation under the global lock. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.mutex.run(fn);
  }

  /** The subscription of the request being served (src/emulator/subscriptions.ts). */
  get subscriptionId(): string {
    return currentSubscription(this.st);
  }

  resourceId(rg: string, type: string, name: string): string {
    return `/subscriptions/${this.subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/${type}/${name}`;
  }

  // ---- rendering ------------------------------------------------------------------------

  #provisioning(readyAt: number, creating = true): string {
    return Date.now() >= readyAt ? 'Succeeded' : creating ? 'Creating' : 'Updating';
  }

  activeAccess(key: string): Access | undefined {
    const now = Date.now();
    let access: Access | undefined;
    for (const g of Object.values(this.st.grants)) {
      if (g.resourceKey !== key || g.expired || Date.parse(g.expiresOn) <= now) continue;
      if (g.access === 'Write') return 'Write';
      access = 'Read';
    }
    return access;
  }

  diskState(d: DiskRec): string {
    const access = this.activeAccess(keyOf(d.id));
    if (access === 'Write') return 'ActiveUpload';
    if (access === 'Read') return 'ActiveSAS';
    if (d.uploadPending) return 'ReadyToUpload';
    return d.managedBy ? 'Attached' : 'Unattached';
  }

  /** The properties disks and snapshots share. */
  #contentProps(r: ContentRec): Record<string, unknown> {
    return {
      creationData: r.creationData,
      diskSizeGB: Math.max(1, Math.ceil(r.sizeBytes / GiB)),
      diskSizeBytes: r.sizeBytes,
      uniqueId: r.uniqueId,
      encryption: { type: 'EncryptionAtRestWithPlatformKey' },
      networkAccessPolicy: r.networkAccessPolicy ?? 'AllowAll',
      ...(r.dataAccessAuthMode ? { dataAccessAuthMode: r.dataAccessAuthMode } : {}),
      publicNetworkAccess: 'Enabled',
      timeCreated: r.timeCreated,
      provisioningState: this.#provisioning(r.readyAt),
      ...(r.osType ? { osType: r.osType } : {}),
      ...(r.hyperVGeneration ? { hyperVGeneration: r.hyperVGeneration } : {}),
      ...(r.securityType ? { securityProfile: { securityType: r.securityType } } : {}),
    };
  }

  renderDisk(d: DiskRec): Record<string, unknown> {
    const props: Record<string, unknown> = {
      ...this.#contentProps(d),
      diskState: this.diskState(d),
      diskIOPSReadWrite: 500,
      diskMBpsReadWrite: 60,
      tier: 'P10',
    };
    const out: Record<string, unknown> = {
      name: d.name,
      id: d.id,
      type: 'Microsoft.Compute/disks',
      location: d.location,
      ...(d.zone ? { zones: [d.zone] } : {}),
      tags: d.tags,
      sku: { name: d.skuName, tier: d.skuName.startsWith('Premium') ? 'Premium' : 'Standard' },
      properties: props,
    };
    if (d.managedBy) out['managedBy'] = d.managedBy;
    return out;
  }

  /** How far a snapshot's background copy is (100 for the disk types that need none, once created). */
  copyPercent(s: SnapshotRec): number {
    if (s.copyDoneAt === undefined || s.copyStartedAt === undefined) return Date.now() >= s.readyAt ? 100 : 50;
    const now = Date.now();
    if (now >= s.copyDoneAt) return 100;
    return Math.floor(((now - s.copyStartedAt) / Math.max(1, s.copyDoneAt - s.copyStartedAt)) * 100);
  }

  renderSnapshot(s: SnapshotRec): Record<string, unknown> {
    const props: Record<string, unknown> = {
      ...this.#contentProps(s),
      incremental: s.incremental,
      diskState: this.activeAccess(keyOf(s.id)) ? 'ActiveSAS' : 'Unattached',
    };
    if (s.incremental) {
      props['incrementalSnapshotFamilyId'] = s.family;
      props['completionPercent'] = this.copyPercent(s);
    }
    return {
      name: s.name,
      id: s.id,
      type: 'Microsoft.Compute/snapshots',
      location: s.location,
      tags: s.tags,
      sku: { name: s.skuName, tier: 'Standard' },
      properties: props,
    };
  }

  renderVm(v: VmRec): Record<string, unknown> {
    const os = this.st.disks[keyOf(v.osDiskId)];
    const diskRef = (id: string) => {
      const d = this.st.disks[keyOf(id)];
      return {
        name: d?.name ?? id.split('/').pop(),
        managedDisk: { id: d?.id ?? id, storageAccountType: d?.skuName ?? 'Premium_LRS' },
        diskSizeGB: d ? Math.max(1, Math.ceil(d.sizeBytes / GiB)) : undefined,
      };
    };
    return {
      name: v.name,
      id: v.id,
      type: 'Microsoft.Compute/virtualMachines',
      location: v.location,
      ...(v.zone ? { zones: [v.zone] } : {}),
      tags: v.tags,
      properties: {
        vmId: v.vmId,
        ...(v.securityType
          ? {
              securityProfile: {
                securityType: v.securityType,
                ...(v.securityType === 'TrustedLaunch'
                  ? { uefiSettings: { secureBootEnabled: true, vTpmEnabled: true } }
                  : {}),
              },
            }
          : {}),
        hardwareProfile: { vmSize: v.vmSize },
        storageProfile: {
          osDisk: {
            osType: os?.osType ?? v.osType,
            createOption: 'Attach',
            caching: 'ReadWrite',
            deleteOption: 'Detach',
            ...diskRef(v.osDiskId),
          },
          dataDisks: v.dataDisks.map((dd) => ({
            lun: dd.lun,
            createOption: 'Attach',
            caching: 'None',
            deleteOption: 'Detach',
            toBeDetached: false,
            ...diskRef(dd.diskId),
          })),
        },
        networkProfile: {
          networkInterfaces: (v.nicIds ?? []).map((nic, i) => ({ id: nic, properties: { primary: i === 0 } })),
        },
        provisioningState: this.#provisioning(v.readyAt),
        timeCreated: v.timeCreated,
      },
    };
  }

  // ---- operations -------------------------------------------------------------------------

  newOperation(
    location: string,
    family: 'disk' | 'vm',
    delayMs: number,
    output?: unknown,
    resourceId?: string,
  ): OperationRec {
    const op: OperationRec = {
      id: randomUUID(),
      location,
      family,
      startTime: new Date().toISOString(),
      doneAt: Date.now() + delayMs,
      resourceId,
    };
    if (output !== undefined) op.output = output;
    this.st.operations[op.id] = op;
    return op;
  }

  operationUrl(op: OperationRec, apiVersion: string, monitor: boolean): string {
    const seg = op.family === 'disk' ? 'DiskOperations' : 'operations';
    return `${this.baseUrl}/subscriptions/${this.subscriptionId}/providers/Microsoft.Compute/locations/${op.location}/${seg}/${op.id}?${monitor ? 'monitor=true&' : ''}api-version=${apiVersion}`;
  }

  getOperation(opId: string): OperationRec {
    const op = this.st.operations[opId];
    if (!op) throw new ArmError(404, 'NotFound', `The operation '${opId}' was not found.`);
    return op;
  }

  // ---- disks --------------------------------------------------------------------------------

  #disk(rg: string, name: string): DiskRec {
    const d = this.st.disks[keyOf(this.resourceId(rg, 'disks', name))];
    if (!d)
      throw new ArmError(
        404,
        'ResourceNotFound',
        `The Resource 'Microsoft.Compute/disks/${name}' under resource group '${rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
      );
    return d;
  }

  #snapshot(rg: string, name: string): SnapshotRec {
    const s = this.st.snapshots[keyOf(this.resourceId(rg, 'snapshots', name))];
    if (!s)
      throw new ArmError(
        404,
        'ResourceNotFound',
        `The Resource 'Microsoft.Compute/snapshots/${name}' under resource group '${rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
      );
    return s;
  }

  #vm(rg: string, name: string): VmRec {
    const v = this.st.virtualMachines[keyOf(this.resourceId(rg, 'virtualMachines', name))];
    if (!v)
      throw new ArmError(
        404,
        'ResourceNotFound',
        `The Resource 'Microsoft.Compute/virtualMachines/${name}' under resource group '${rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
      );
    return v;
  }

  getDisk(rg: string, name: string): Record<string, unknown> {
    return this.renderDisk(this.#disk(rg, name));
  }
  getSnapshot(rg: string, name: string): Record<string, unknown> {
    return this.renderSnapshot(this.#snapshot(rg, name));
  }
  getVm(rg: string, name: string): Record<string, unknown> {
    return this.renderVm(this.#vm(rg, name));
  }

  list(kind: 'disks' | 'snapshots' | 'virtualMachines', rg?: string): Record<string, unknown>[] {
    const recs = (Object.values(this.st[kind]) as (DiskRec | SnapshotRec | VmRec)[]).filter((r) =>
      inCurrentSubscription(this.st, r.id),
    );
    const filtered = rg === undefined ? recs : recs.filter((r) => r.resourceGroup.toLowerCase() === rg.toLowerCase());
    filtered.sort((a, b) => a.id.toLowerCase().localeCompare(b.id.toLowerCase()));
    return filtered.map((r) =>
      kind === 'disks'
        ? this.renderDisk(r as DiskRec)
        : kind === 'snapshots'
          ? this.renderSnapshot(r as SnapshotRec)
          : this.renderVm(r as VmRec),
    );
  }

  /** Resolves a sourceResourceId to a disk or snapshot record. */
  #source(id: unknown): { kind: 'disks' | 'snapshots'; rec: DiskRec | SnapshotRec } {
    if (typeof id !== 'string' || !id)
      throw new ArmError(
        400,
        'InvalidParameter',
        "Required parameter 'creationData.sourceResourceId' is missing (null).",
      );
    const p = parseResourceId(id, this.subscriptionId);
    if (!p || p.type === 'virtualMachines')
      throw new ArmError(
        400,
        'InvalidParameter',
        `The value '${id}' of parameter 'creationData.sourceResourceId' is not a valid disk or snapshot id.`,
      );
    const rec = p.type === 'disks' ? this.st.disks[keyOf(id)] : this.st.snapshots[keyOf(id)];
    if (!rec) throw new ArmError(404, 'NotFound', `Resource '${id}' was not found.`);
    return { kind: p.type as 'disks' | 'snapshots', rec };
  }

  async putDisk(rg: string, name: string, body: unknown): Promise<ArmResult> {
    validName(name, 'Microsoft.Compute/disks');
    const b = obj(body, 'disk');
    const location = normalizeLocation(b['location']);
    const tags = tagsOf(b['tags']);
    const props = obj(b['properties'], 'properties');
    const id = this.resourceId(rg, 'disks', name);
    const existing = this.st.disks[keyOf(id)];
    if (existing) {
      if (existing.location !== location)
        throw new ArmError(409, 'PropertyChangeNotAllowed', "Changing property 'location' is not allowed.");
      existing.tags = tags;
      await this.save();
      return { status: 200, body: this.renderDisk(existing) };
    }
    const cd = obj(props['creationData'], 'creationData');
    const createOption = cd['createOption'];
    const skuName =
      typeof (b['sku'] as Record<string, unknown> | undefined)?.['name'] === 'string'
        ? String((b['sku'] as Record<string, unknown>)['name'])
        : 'Premium_LRS';
    const uniqueId = randomUUID();
    let sizeBytes: number;
    let contentId: string;
    let family = uniqueId;
    let uploadPending = false;
    const creationData: Record<string, unknown> = { createOption };
    let osType = typeof props['osType'] === 'string' ? props['osType'] : undefined;
    let hyperVGeneration = typeof props['hyperVGeneration'] === 'string' ? props['hyperVGeneration'] : undefined;
    const sizeGB = props['diskSizeGB'];
    if (
      sizeGB !== undefined &&
      (typeof sizeGB !== 'number' || !Number.isInteger(sizeGB) || sizeGB < 1 || sizeGB > 65536)
    ) {
      throw new ArmError(
        400,
        'InvalidParameter',
        `The value '${String(sizeGB)}' of parameter 'diskSizeGB' is out of range. Value must be between 1 and 65536.`,
      );
    }
    if (createOption === 'Empty') {
      if (sizeGB === undefined)
        throw new ArmError(400, 'InvalidParameter', "Required parameter 'diskSizeGB' is missing (null).");
      sizeBytes = (sizeGB as number) * GiB;
      contentId = await this.store.create();
    } else if (createOption === 'Upload') {
      const up = cd['uploadSizeBytes'];
      if (typeof up !== 'number' || !Number.isInteger(up) || up <= 0 || up % PAGE !== 0) {
        throw new ArmError(
          400,
          'InvalidParameter',
          `The value '${String(up)}' of parameter 'creationData.uploadSizeBytes' is invalid: it must be a positive multiple of 512.`,
        );
      }
      creationData['uploadSizeBytes'] = up;
      sizeBytes = up;
      uploadPending = true;
      contentId = await this.store.create();
    } else if (createOption === 'Copy') {
      const src = this.#source(cd['sourceResourceId']);
      if (src.rec.location !== location)
        throw new ArmError(
          400,
          'InvalidParameter',
          `The source resource '${src.rec.id}' is in location '${src.rec.location}', but the disk is in '${location}'.`,
        );
      if (
        src.kind === 'disks' &&
        ((src.rec as DiskRec).uploadPending || this.activeAccess(keyOf(src.rec.id)) === 'Write')
      ) {
        throw new ArmError(409, 'OperationNotAllowed', `Source disk '${src.rec.name}' is being uploaded.`);
      }
      creationData['sourceResourceId'] = src.rec.id;
      creationData['sourceUniqueId'] = src.rec.uniqueId;
      sizeBytes = src.rec.sizeBytes;
      if (sizeGB !== undefined) {
        if ((sizeGB as number) * GiB < sizeBytes)
          throw new ArmError(400, 'InvalidParameter', 'Disk size cannot be smaller than the source.');
        sizeBytes = (sizeGB as number) * GiB;
      }
      osType ??= src.rec.osType;
      hyperVGeneration ??= src.rec.hyperVGeneration;
      contentId = await this.store.create(src.rec.contentId);
    } else {
      throw new ArmError(
        400,
        'InvalidParameter',
        `The value '${String(createOption)}' of parameter 'creationData.createOption' is not supported by the emulator (Empty, Upload, Copy).`,
      );
    }
    void family;
    family = uniqueId;
    const zone = zoneOf(b['zones']);
    const sp = props['securityProfile'] as { securityType?: unknown } | undefined;
    const securityType =
      typeof sp?.securityType === 'string'
        ? sp.securityType
        : createOption === 'Copy'
          ? this.#source(cd['sourceResourceId']).rec.securityType
          : undefined;
    checkNewDisk({
      createOption,
      skuName,
      ...(hyperVGeneration ? { hyperVGeneration } : {}),
      ...(securityType ? { securityType } : {}),
    });
    const rec: DiskRec = {
      id,
      name,
      resourceGroup: rg,
      location,
      tags,
      skuName,
      sizeBytes,
      contentId,
      uniqueId,
      timeCreated: new Date().toISOString(),
      readyAt: Date.now() + this.timings.disk,
      creationData,
      uploadPending,
      family,
    };
    if (osType) rec.osType = osType;
    if (hyperVGeneration) rec.hyperVGeneration = hyperVGeneration;
    if (securityType) rec.securityType = securityType;
    if (zone) rec.zone = zone;
    this.st.disks[keyOf(id)] = rec;
    const op = this.newOperation(location, 'disk', this.timings.disk, undefined, id);
    try {
      await this.save();
    } catch (err) {
      delete this.st.disks[keyOf(id)];
      throw err;
    }
    return { status: 202, body: this.renderDisk(rec), operation: op, location: true };
  }

  async putSnapshot(rg: string, name: string, body: unknown): Promise<ArmResult> {
    validName(name, 'Microsoft.Compute/snapshots');
    const b = obj(body, 'snapshot');
    const location = normalizeLocation(b['location']);
    const tags = tagsOf(b['tags']);
    const props = obj(b['properties'], 'properties');
    const cd = obj(props['creationData'], 'creationData');
    const id = this.resourceId(rg, 'snapshots', name);
    const existing = this.st.snapshots[keyOf(id)];
    if (existing) {
      const srcId = cd['sourceResourceId'];
      if (
        typeof srcId === 'string' &&
        srcId.toLowerCase() !== String(existing.creationData['sourceResourceId']).toLowerCase()
      ) {
        throw new ArmError(409, 'PropertyChangeNotAllowed', "Changing property 'sourceResourceId' is not allowed.");
      }
      existing.tags = tags;
      await this.save();
      return { status: 200, body: this.renderSnapshot(existing) };
    }
    if (cd['createOption'] !== 'Copy') {
      throw new ArmError(
        400,
        'InvalidParameter',
        `The value '${String(cd['createOption'])}' of parameter 'creationData.createOption' is not supported by the emulator for snapshots (Copy).`,
      );
    }
    const src = this.#source(cd['sourceResourceId']);
    if (src.rec.location !== location) {
      throw new ArmError(
        400,
        'InvalidParameter',
        `Snapshot location '${location}' must match the location '${src.rec.location}' of source '${src.rec.id}'.`,
      );
    }
    if (
      src.kind === 'disks' &&
      ((src.rec as DiskRec).uploadPending || this.activeAccess(keyOf(src.rec.id)) === 'Write')
    ) {
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Cannot snapshot disk '${src.rec.name}' while it is being uploaded.`,
      );
    }
    const incremental = props['incremental'] === true;
    if (incremental && src.kind === 'disks') this.#checkSnapshotLimits(src.rec as DiskRec);
    const contentId = await this.store.create(src.rec.contentId);
    const rec: SnapshotRec = {
      id,
      name,
      resourceGroup: rg,
      location,
      tags,
      skuName:
        typeof (b['sku'] as Record<string, unknown> | undefined)?.['name'] === 'string'
          ? String((b['sku'] as Record<string, unknown>)['name'])
          : 'Standard_ZRS',
      sizeBytes: src.rec.sizeBytes,
      contentId,
      uniqueId: randomUUID(),
      timeCreated: new Date().toISOString(),
      readyAt: Date.now() + this.timings.snapshot,
      incremental,
      creationData: { createOption: 'Copy', sourceResourceId: src.rec.id, sourceUniqueId: src.rec.uniqueId },
      family: src.rec.family,
      ...(src.rec.diffEpoch ? { diffEpoch: src.rec.diffEpoch } : {}),
      // The emulator's choice: a snapshot keeps its disk's export settings (Azure Policy usually sets both alike).
      ...(src.rec.networkAccessPolicy ? { networkAccessPolicy: src.rec.networkAccessPolicy } : {}),
      ...(src.rec.dataAccessAuthMode ? { dataAccessAuthMode: src.rec.dataAccessAuthMode } : {}),
    };
    if (incremental && src.kind === 'disks' && BACKGROUND_COPY_SKUS.includes(src.rec.skuName)) {
      rec.copyStartedAt = Date.now();
      rec.copyDoneAt = Date.now() + this.timings.snapshot + this.limits.backgroundCopyMs;
    }
    if (incremental && src.kind === 'disks') {
      const d = src.rec as DiskRec;
      d.snapshotTimes = [
        ...(d.snapshotTimes ?? []).filter((t) => t > Date.now() - this.limits.snapshotWindowMs),
        Date.now(),
      ];
    }
    if (src.rec.osType) rec.osType = src.rec.osType;
    if (src.rec.hyperVGeneration) rec.hyperVGeneration = src.rec.hyperVGeneration;
    if (src.rec.securityType) rec.securityType = src.rec.securityType;
    this.st.snapshots[keyOf(id)] = rec;
    const op = this.newOperation(location, 'disk', this.timings.snapshot, undefined, id);
    try {
      await this.save();
    } catch (err) {
      delete this.st.snapshots[keyOf(id)];
      await this.store.delete(contentId);
      throw err;
    }
    return { status: 202, body: this.renderSnapshot(rec), operation: op, location: true };
  }

  /** Azure's incremental snapshot limits: so many per disk per 5 minutes, so many per disk at all. */
  #checkSnapshotLimits(d: DiskRec): void {
    const recent = (d.snapshotTimes ?? []).filter((t) => t > Date.now() - this.limits.snapshotWindowMs);
    if (recent.length >= this.limits.snapshotsPerWindow) {
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Disk ${d.name} already has ${recent.length} incremental snapshots taken in the last ${this.limits.snapshotWindowMs / 60_000} minutes, the most Azure allows; try again later.`,
      );
    }
    const total = Object.values(this.st.snapshots).filter((s) => s.incremental && s.family === d.family).length;
    if (total >= this.limits.snapshotsPerDisk) {
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Disk ${d.name} already has ${total} incremental snapshots, the most Azure allows per disk; delete some first.`,
      );
    }
    if (BACKGROUND_COPY_SKUS.includes(d.skuName)) {
      const pending = Object.values(this.st.snapshots).filter(
        (s) => s.family === d.family && s.copyDoneAt !== undefined && s.copyDoneAt > Date.now(),
      ).length;
      if (pending >= this.limits.pendingCopiesPerDisk) {
        throw new ArmError(
          409,
          'OperationNotAllowed',
          `Disk ${d.name} (${d.skuName}) already has ${pending} snapshots whose background copy is not complete, the most Azure allows; wait for completionPercent 100.`,
        );
      }
    }
  }

  /** PATCH a disk: tags, a larger diskSizeGB, networkAccessPolicy, dataAccessAuthMode. */
  async patchDisk(rg: string, name: string, body: unknown): Promise<ArmResult> {
    const d = this.#disk(rg, name);
    const b = obj(body, 'diskUpdate');
    const props = (b['properties'] ?? {}) as Record<string, unknown>;
    if (b['tags'] !== undefined) d.tags = tagsOf(b['tags']);
    const sizeGB = props['diskSizeGB'];
    if (sizeGB !== undefined) {
      if (typeof sizeGB !== 'number' || !Number.isInteger(sizeGB) || sizeGB < 1 || sizeGB > 65536) {
        throw new ArmError(
          400,
          'InvalidParameter',
          `The value '${String(sizeGB)}' of parameter 'diskSizeGB' is out of range. Value must be between 1 and 65536.`,
        );
      }
      const bytes = sizeGB * GiB;
      if (bytes < d.sizeBytes)
        throw new ArmError(400, 'BadRequest', `Disk ${d.name} cannot be shrunk from ${d.sizeBytes} to ${bytes} bytes.`);
      // Azure refuses diffs between snapshots on either side of a resize across 4 TiB.
      if (d.sizeBytes <= this.limits.resizeBoundaryBytes && bytes > this.limits.resizeBoundaryBytes)
        d.diffEpoch = (d.diffEpoch ?? 0) + 1;
      d.sizeBytes = bytes;
    }
    const nap = props['networkAccessPolicy'];
    if (nap !== undefined) {
      if (nap !== 'AllowAll' && nap !== 'DenyAll' && nap !== 'AllowPrivate')
        throw new ArmError(
          400,
          'InvalidParameter',
          `The value '${String(nap)}' of parameter 'networkAccessPolicy' is invalid (AllowAll, AllowPrivate, DenyAll).`,
        );
      d.networkAccessPolicy = nap;
    }
    const daam = props['dataAccessAuthMode'];
    if (daam !== undefined) {
      if (daam !== 'None' && daam !== 'AzureActiveDirectory')
        throw new ArmError(
          400,
          'InvalidParameter',
          `The value '${String(daam)}' of parameter 'dataAccessAuthMode' is invalid (None, AzureActiveDirectory).`,
        );
      d.dataAccessAuthMode = daam;
    }
    const op = this.newOperation(d.location, 'disk', this.timings.disk, this.renderDisk(d), d.id);
    await this.save();
    return { status: 202, operation: op, location: true };
  }

  async deleteDiskOrSnapshot(kind: 'disks' | 'snapshots', rg: string, name: string): Promise<ArmResult> {
    const id = this.resourceId(rg, kind, name);
    const key = keyOf(id);
    const rec = kind === 'disks' ? this.st.disks[key] : this.st.snapshots[key];
    if (!rec) return { status: 204 };
    if (kind === 'disks' && (rec as DiskRec).managedBy) {
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Disk ${rec.name} is attached to VM ${(rec as DiskRec).managedBy}.`,
      );
    }
    if (this.activeAccess(key)) {
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `${kind === 'disks' ? 'Disk' : 'Snapshot'} ${rec.name} is currently being accessed via SAS (${this.activeAccess(key)}). Call endGetAccess first.`,
      );
    }
    if (kind === 'disks') delete this.st.disks[key];
    else delete this.st.snapshots[key];
    for (const [gid, g] of Object.entries(this.st.grants)) if (g.resourceKey === key) delete this.st.grants[gid];
    const op = this.newOperation(rec.location, 'disk', this.timings.delete);
    await this.save();
    await this.store.delete(rec.contentId);
    return { status: 202, operation: op, location: true };
  }

  async grantAccess(kind: 'disks' | 'snapshots', rg: string, name: string, body: unknown): Promise<ArmResult> {
    const rec = kind === 'disks' ? this.#disk(rg, name) : this.#snapshot(rg, name);
    const key = keyOf(rec.id);
    const b = obj(body, 'grantAccessData');
    const access = b['access'];
    const duration = b['durationInSeconds'];
    if (access !== 'Read' && access !== 'Write') {
      throw new ArmError(
        400,
        'InvalidParameter',
        `The value '${String(access)}' of parameter 'grantAccessData.access' is invalid (Read, Write).`,
      );
    }
    if (typeof duration !== 'number' || !Number.isInteger(duration) || duration < 1 || duration > 5 * 86400) {
      throw new ArmError(
        400,
        'InvalidParameter',
        `The value '${String(duration)}' of parameter 'grantAccessData.durationInSeconds' is invalid.`,
      );
    }
    const current = this.activeAccess(key);
    if (kind === 'snapshots' && access === 'Write')
      throw new ArmError(409, 'OperationNotAllowed', 'Write access is not allowed on snapshots.');
    if (kind === 'disks') {
      const d = rec as DiskRec;
      if (d.managedBy)
        throw new ArmError(
          409,
          'OperationNotAllowed',
          `Disk ${d.name} is attached to VM ${d.managedBy}; the emulator only grants access to unattached disks.`,
        );
      if (access === 'Write' && !d.uploadPending)
        throw new ArmError(
          409,
          'OperationNotAllowed',
          `Write access can only be granted to a disk in state ReadyToUpload; disk ${d.name} is ${this.diskState(d)}.`,
        );
      if (access === 'Read' && d.uploadPending && current !== 'Write')
        throw new ArmError(409, 'OperationNotAllowed', `Disk ${d.name} is in state ReadyToUpload.`);
    }
    if (current && current !== access)
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `${rec.name} already has active ${current} access. Call endGetAccess first.`,
      );
    if (Date.now() < rec.readyAt)
      throw new ArmError(409, 'OperationNotAllowed', `${rec.name} is still being provisioned.`);
    if (kind === 'snapshots' && this.copyPercent(rec as SnapshotRec) < 100) {
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Snapshot ${rec.name} cannot be accessed until its background copy completes (completionPercent ${this.copyPercent(rec as SnapshotRec)}).`,
      );
    }
    if (rec.networkAccessPolicy === 'DenyAll') {
      throw new ArmError(
        403,
        'OperationNotAllowed',
        `${rec.name} has networkAccessPolicy DenyAll: export (beginGetAccess) is not allowed. Set networkAccessPolicy to AllowAll, or AllowPrivate with a disk access resource.`,
      );
    }
    if (kind === 'snapshots' && (rec as SnapshotRec).incremental && !current) {
      const now = Date.now();
      const open = new Set<string>();
      for (const g of Object.values(this.st.grants)) {
        if (g.kind !== 'snapshots' || g.expired || Date.parse(g.expiresOn) <= now) continue;
        const s = this.st.snapshots[g.resourceKey];
        if (s?.incremental && s.family === rec.family) open.add(g.resourceKey);
      }
      if (open.size >= this.limits.sasPerFamily) {
        throw new ArmError(
          409,
          'OperationNotAllowed',
          `At most ${this.limits.sasPerFamily} snapshots of an incremental snapshot family may have an active SAS at once; ${open.size} of ${rec.name}'s family have one. Call endGetAccess on one first.`,
        );
      }
    }
    const startsOn = new Date();
    const expiresOn = new Date(startsOn.getTime() + duration * 1000);
    const grant: GrantRec = {
      id: randomBytes(8).toString('hex'),
      resourceKey: key,
      kind,
      access,
      account: `md-${createHmac('sha256', 'acct').update(rec.uniqueId).digest('hex').slice(0, 12)}`,
      container: createHmac('sha256', 'cont').update(rec.uniqueId).digest('hex').slice(0, 12),
      startsOn: startsOn.toISOString().replace(/\.\d+Z$/, 'Z'),
      expiresOn: expiresOn.toISOString().replace(/\.\d+Z$/, 'Z'),
    };
    this.st.grants[grant.id] = grant;
    const output = { accessSAS: this.sasUrl(grant) };
    const op = this.newOperation(rec.location, 'disk', this.timings.access, output);
    await this.save();
    return { status: 202, operation: op, location: true };
  }

  /** Active SAS grants: which resource, what access, until when. */
  activeGrants(): { resourceId: string; access: Access; expiresOn: string }[] {
    const now = Date.now();
    const out = [];
    for (const g of Object.values(this.st.grants)) {
      if (g.expired || Date.parse(g.expiresOn) <= now) continue;
      const rec = g.kind === 'disks' ? this.st.disks[g.resourceKey] : this.st.snapshots[g.resourceKey];
      if (rec) out.push({ resourceId: rec.id, access: g.access, expiresOn: g.expiresOn });
    }
    return out;
  }

  /** Expires every SAS given so far, as the passing of their `se` would (for tests). */
  async expireGrants(): Promise<number> {
    let n = 0;
    for (const g of Object.values(this.st.grants)) {
      if (g.expired) continue;
      g.expired = true;
      n++;
    }
    await this.save();
    return n;
  }

  async revokeAccess(kind: 'disks' | 'snapshots', rg: string, name: string): Promise<ArmResult> {
    const rec = kind === 'disks' ? this.#disk(rg, name) : this.#snapshot(rg, name);
    const key = keyOf(rec.id);
    let hadWrite = false;
    for (const [gid, g] of Object.entries(this.st.grants)) {
      if (g.resourceKey !== key) continue;
      if (g.access === 'Write') hadWrite = true;
      delete this.st.grants[gid];
    }
    let footerAt: number | undefined;
    if (kind === 'disks' && hadWrite) {
      const d = rec as DiskRec;
      d.uploadPending = false;
      // As Azure: an upload is a fixed VHD (raw image + 512-byte footer); the disk is the raw part.
      if (
        d.sizeBytes > VHD_FOOTER &&
        isFixedVhdFooter(
          await this.store.read(d.contentId, d.sizeBytes - VHD_FOOTER, VHD_FOOTER),
          d.sizeBytes - VHD_FOOTER,
        )
      ) {
        footerAt = d.sizeBytes - VHD_FOOTER;
        d.sizeBytes = footerAt;
      }
    }
    const op = this.newOperation(rec.location, 'disk', this.timings.access);
    await this.save();
    // The footer now lies beyond the disk's end; clear it so it is not carried into copies.
    if (footerAt !== undefined)
      await this.writeContent(rec.contentId, [{ offset: footerAt, length: VHD_FOOTER, data: null }]);
    return { status: 202, operation: op, location: true };
  }

  // ---- virtual machines -----------------------------------------------------------------

  async putVm(rg: string, name: string, body: unknown): Promise<ArmResult> {
    validName(name, 'Microsoft.Compute/virtualMachines');
    const b = obj(body, 'parameters');
    const location = normalizeLocation(b['location']);
    const tags = tagsOf(b['tags']);
    const id = this.resourceId(rg, 'virtualMachines', name);
    const existing = this.st.virtualMachines[keyOf(id)];
    if (existing) {
      existing.tags = tags;
      await this.save();
      return { status: 200, body: this.renderVm(existing) };
    }
    const props = obj(b['properties'], 'properties');
    const sp = obj(props['storageProfile'], 'storageProfile');
    const os = obj(sp['osDisk'], 'storageProfile.osDisk');
    if (os['createOption'] !== undefined && os['createOption'] !== 'Attach') {
      throw new ArmError(
        400,
        'InvalidParameter',
        `The emulator only supports storageProfile.osDisk.createOption 'Attach', not '${String(os['createOption'])}'.`,
      );
    }
    const osId = obj(os['managedDisk'], 'storageProfile.osDisk.managedDisk')['id'];
    if (typeof osId !== 'string')
      throw new ArmError(
        400,
        'InvalidParameter',
        "Required parameter 'storageProfile.osDisk.managedDisk.id' is missing (null).",
      );
    const dataIn = sp['dataDisks'] === undefined ? [] : sp['dataDisks'];
    if (!Array.isArray(dataIn))
      throw new ArmError(400, 'InvalidParameter', "The value of parameter 'storageProfile.dataDisks' is invalid.");
    const dataDisks: { lun: number; diskId: string }[] = [];
    const luns = new Set<number>();
    for (const [i, dd] of dataIn.entries()) {
      const o = obj(dd, `storageProfile.dataDisks[${i}]`);
      const lun = o['lun'];
      if (typeof lun !== 'number' || !Number.isInteger(lun) || lun < 0 || lun > 63)
        throw new ArmError(
          400,
          'InvalidParameter',
          `The value of parameter 'storageProfile.dataDisks[${i}].lun' is invalid.`,
        );
      if (luns.has(lun)) throw new ArmError(400, 'InvalidParameter', `Two data disks use the same LUN ${lun}.`);
      luns.add(lun);
      if (o['createOption'] !== undefined && o['createOption'] !== 'Attach')
        throw new ArmError(400, 'InvalidParameter', `The emulator only supports dataDisks createOption 'Attach'.`);
      const did = obj(o['managedDisk'], `storageProfile.dataDisks[${i}].managedDisk`)['id'];
      if (typeof did !== 'string')
        throw new ArmError(
          400,
          'InvalidParameter',
          `Required parameter 'storageProfile.dataDisks[${i}].managedDisk.id' is missing (null).`,
        );
      dataDisks.push({ lun, diskId: did });
    }
    const all = [osId, ...dataDisks.map((d) => d.diskId)];
    if (new Set(all.map(keyOf)).size !== all.length)
      throw new ArmError(400, 'InvalidParameter', 'The same disk is used twice.');
    const recs: DiskRec[] = [];
    for (const did of all) {
      const d = this.st.disks[keyOf(did)];
      if (!d) throw new ArmError(404, 'NotFound', `Disk '${did}' was not found.`);
      if (d.location !== location)
        throw new ArmError(
          400,
          'InvalidParameter',
          `Disk '${did}' is in location '${d.location}', the VM in '${location}'.`,
        );
      if (d.managedBy)
        throw new ArmError(409, 'OperationNotAllowed', `Disk '${d.name}' is already attached to VM '${d.managedBy}'.`);
      if (d.uploadPending || this.activeAccess(keyOf(d.id)))
        throw new ArmError(
          409,
          'OperationNotAllowed',
          `Disk '${d.name}' is in state ${this.diskState(d)} and cannot be attached.`,
        );
      recs.push(d);
    }
    const hw = props['hardwareProfile'] as Record<string, unknown> | undefined;
    const nics = (props['networkProfile'] as { networkInterfaces?: unknown } | undefined)?.networkInterfaces;
    if (
      nics !== undefined &&
      (!Array.isArray(nics) || nics.some((n) => typeof (n as { id?: unknown })?.id !== 'string'))
    ) {
      throw new ArmError(
        400,
        'InvalidParameter',
        "The value of parameter 'networkProfile.networkInterfaces' is invalid: each needs an id.",
      );
    }
    const vmSize = typeof hw?.['vmSize'] === 'string' ? hw['vmSize'] : 'Standard_D2s_v3';
    const zone = zoneOf(b['zones']);
    const vmSecurity = (props['securityProfile'] as { securityType?: unknown } | undefined)?.securityType;
    const securityType = typeof vmSecurity === 'string' ? vmSecurity : undefined;
    checkNewVm({ vmSize, ...(securityType ? { securityType } : {}), ...(zone ? { zone } : {}) }, recs[0]!, recs);
    const rec: VmRec = {
      ...(Array.isArray(nics) && nics.length ? { nicIds: nics.map((n) => (n as { id: string }).id) } : {}),
      ...(securityType ? { securityType } : {}),
      ...(zone ? { zone } : {}),
      id,
      name,
      resourceGroup: rg,
      location,
      tags,
      vmId: randomUUID(),
      vmSize,
      osType: typeof os['osType'] === 'string' ? os['osType'] : (recs[0]!.osType ?? 'Linux'),
      osDiskId: recs[0]!.id,
      dataDisks: dataDisks.map((dd, i) => ({ lun: dd.lun, diskId: recs[i + 1]!.id })),
      timeCreated: new Date().toISOString(),
      readyAt: Date.now() + this.timings.vm,
    };
    for (const d of recs) d.managedBy = id;
    this.st.virtualMachines[keyOf(id)] = rec;
    const op = this.newOperation(location, 'vm', this.timings.vm, undefined, id);
    await this.save();
    return { status: 201, body: this.renderVm(rec), operation: op, location: false };
  }

  async deleteVm(rg: string, name: string): Promise<ArmResult> {
    const id = this.resourceId(rg, 'virtualMachines', name);
    const rec = this.st.virtualMachines[keyOf(id)];
    if (!rec) return { status: 204 };
    for (const did of [rec.osDiskId, ...rec.dataDisks.map((d) => d.diskId)]) {
      const d = this.st.disks[keyOf(did)];
      if (d?.managedBy && keyOf(d.managedBy) === keyOf(id)) delete d.managedBy;
    }
    delete this.st.virtualMachines[keyOf(id)];
    const op = this.newOperation(rec.location, 'vm', this.timings.delete);
    await this.save();
    return { status: 202, operation: op, location: true };
  }

  // ---- data plane ----------------------------------------------------------------------------

  sign(g: GrantRec, sp: string, sv: string): string {
    const text = [g.account, g.container, BLOB_NAME, sp, g.startsOn, g.expiresOn, g.id, sv].join('\n');
    return createHmac('sha256', Buffer.from(this.st.sasKey, 'hex')).update(text).digest('base64');
  }

  sasUrl(g: GrantRec): string {
    const sv = '2018-03-28';
    const sp = g.access === 'Write' ? 'rw' : 'r';
    const q = new URLSearchParams({
      sv,
      sr: 'b',
      si: g.id,
      st: g.startsOn,
      se: g.expiresOn,
      sp,
      sig: this.sign(g, sp, sv),
    });
    if (this.hostStyleSas) return `https://${g.account}${SAS_HOST_SUFFIX}/${g.container}/${BLOB_NAME}?${q.toString()}`;
    return `${this.baseUrl}/${g.account}/${g.container}/${BLOB_NAME}?${q.toString()}`;
  }

  /** Validates a SAS URL (path + query) and returns what it grants access to. */
  resolveSas(pathname: string, query: URLSearchParams): SasTarget {
    const parts = pathname.split('/').filter(Boolean);
    if (parts.length !== 3)
      throw new StorageError(400, 'InvalidUri', 'The requested URI does not represent any resource on the server.');
    const [account, container, blob] = parts as [string, string, string];
    const si = query.get('si');
    const sig = query.get('sig');
    const sp = query.get('sp') ?? '';
    const sv = query.get('sv') ?? '';
    const authFail = (why: string) =>
      new StorageError(
        403,
        'AuthenticationFailed',
        `Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature. ${why}`,
      );
    if (!si || !sig) throw authFail('Missing SAS parameters.');
    const g = this.st.grants[si];
    if (!g) throw authFail('Signed identifier not found: the access was revoked or never granted.');
    if (g.account !== account || g.container !== container || blob !== BLOB_NAME)
      throw authFail('Signature does not match the resource.');
    const expected = Buffer.from(this.sign(g, sp, sv));
    const got = Buffer.from(sig);
    if (
      expected.length !== got.length ||
      !timingSafeEqual(expected, got) ||
      query.get('st') !== g.startsOn ||
      query.get('se') !== g.expiresOn
    ) {
      throw authFail('Signature did not match.');
    }
    if (g.expired || Date.parse(g.expiresOn) <= Date.now())
      throw authFail(`Signed expiry time [${g.expiresOn}] must be after signed start time and current time.`);
    const rec =
      g.kind === 'disks'
        ? this.st.disks[g.resourceKey]
        : g.kind === 'diskRestorePoints'
          ? this.st.diskRestorePoints?.[g.resourceKey]
          : this.st.snapshots[g.resourceKey];
    if (!rec) throw new StorageError(404, 'BlobNotFound', 'The specified blob does not exist.');
    return { grant: g, kind: g.kind, rec };
  }

  etag(contentId: string): string {
    return `"0x8D${createHmac('sha256', 'etag')
      .update(`${contentId}:${this.#contentVersion.get(contentId) ?? 0}`)
      .digest('hex')
      .slice(0, 12)
      .toUpperCase()}"`;
  }

  async putPages(target: SasTarget, offset: number, length: number, data: Buffer | null): Promise<void> {
    if (target.grant.access !== 'Write') {
      throw new StorageError(
        403,
        'AuthorizationPermissionMismatch',
        'This request is not authorized to perform this operation using this permission.',
      );
    }
    await this.exclusive(async () => {
      await this.store.write(target.rec.contentId, [{ offset, length, data }]);
      this.#contentVersion.set(target.rec.contentId, (this.#contentVersion.get(target.rec.contentId) ?? 0) + 1);
    });
  }

  pageRanges(target: SasTarget, offset: number, length: number): Range[] {
    return this.store.allocatedRanges(target.rec.contentId, offset, length);
  }

  pageRangesDiff(
    target: SasTarget,
    previous: SasTarget,
    offset: number,
    length: number,
  ): { changed: Range[]; cleared: Range[] } {
    if (target.rec.family !== previous.rec.family) {
      throw new StorageError(
        409,
        'PreviousSnapshotNotFound',
        'The previous snapshot is not an earlier snapshot of the same disk: it is of another incremental snapshot family (was the disk deleted and created again?).',
      );
    }
    if ((target.rec.diffEpoch ?? 0) !== (previous.rec.diffEpoch ?? 0)) {
      throw new StorageError(
        409,
        'PreviousSnapshotNotFound',
        'The disk was resized across 4 TiB between the two snapshots: their difference cannot be computed.',
      );
    }
    return this.store.diffRanges(target.rec.contentId, previous.rec.contentId, offset, length);
  }

  // ---- in-process helpers ------------------------------------------------------------------

  findDisk(idOrName: string): DiskRec | undefined {
    const byId = this.st.disks[keyOf(idOrName)];
    if (byId) return byId;
    return Object.values(this.st.disks).find((d) => d.name.toLowerCase() === idOrName.toLowerCase());
  }

  findVm(idOrName: string): VmRec | undefined {
    const byId = this.st.virtualMachines[keyOf(idOrName)];
    if (byId) return byId;
    return Object.values(this.st.virtualMachines).find((v) => v.name.toLowerCase() === idOrName.toLowerCase());
  }

  async writeContent(contentId: string, writes: PageWrite[]): Promise<void> {
    await this.store.write(contentId, writes);
    this.#contentVersion.set(contentId, (this.#contentVersion.get(contentId) ?? 0) + 1);
  }
}
