import type { TokenCredential } from '@azure/core-auth';
import { ComputeManagementClient, type ComputeManagementClientOptionalParams, type Disk, type Snapshot, type VirtualMachine } from '@azure/arm-compute';
import { AnonymousCredential, PageBlobClient, type StoragePipelineOptions } from '@azure/storage-blob';
import type { ByteRange } from '../dataplane/byte-ranges.ts';
import type { DiskReader, DiskWriter } from '../dataplane/disk-io.ts';
import { parseResourceId, sameResource } from './azure-ids.ts';
import { AzureVmPoints, parseDiskPointId, vmPointIdOf } from './azure-restore-points.ts';
import { isAzureRegion } from './azure-regions.ts';
import { ensureResourceGroup } from './azure-resource-groups.ts';
import { createNetworkInterface, deleteNetworkInterface, type NetworkInterfaceRequest } from './azure-network.ts';
import { runGuestScript } from './azure-run-command.ts';
import { diskProfile, machineProfile, osTypeOf, uploadDiskProperties, vmSecurityProfile } from './azure-profiles.ts';
import { GOLDSNAP_TAG, type Cloud, type CloudDisk, type CloudSnapshot, type CloudVm, type CreateVmRequest, type GoldsnapVmPoint, type RestoreDiskRequest, type ScriptResult, type SnapshotRequest, type VmPoint, type VmPointRequest } from './cloud.ts';
import { fixedVhdFooter, VHD_FOOTER_BYTES } from './vhd-footer.ts';

export interface AzureCloudOptions {
  subscriptionId: string;
  credential: TokenCredential;
  /** Endpoint and TLS trust for ARM (e.g. the emulator's); defaults to public Azure. */
  computeOptions?: ComputeManagementClientOptionalParams;
  /** Pipeline options for the page-blob data plane behind SAS URLs. */
  blobOptions?: StoragePipelineOptions;
  /** VM size for restored VMs. */
  vmSize?: string;
  /** How often long-running operations are polled (the SDK's default is 2 s; the emulator is quicker). */
  pollIntervalMs?: number;
}

/** How long a read or write SAS is asked for; long transfers renew nothing, so be generous. */
const ACCESS_SECONDS = 6 * 3600;
/** Get Page Ranges on a whole large disk can time out; Azure advises asking in segments. */
const PAGE_RANGE_SEGMENT = 8 * 1024 ** 3;
/** Put Page takes at most 4 MiB per request. */
const MAX_PUT_PAGE = 4 * 1024 ** 2;

function isNotFound(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 404;
}

function isConflict(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 409;
}

/** Get Page Ranges returns at most 10,000 ranges; a busier segment is asked again in halves down to this. */
const MIN_PAGE_RANGE_SEGMENT = 16 * 1024 ** 2;

/**
 * The `azure` cloud on the official SDKs: @azure/arm-compute for VMs, disks and snapshots,
 * @azure/storage-blob for the page-blob data behind a snapshot's or disk's SAS URL. It runs
 * against real Azure or the emulator (src/emulator) without change.
 */
export class AzureCloud implements Cloud {
  readonly kind = 'azure';
  private readonly compute: ComputeManagementClient;
  private readonly opts: AzureCloudOptions;
  /** Open SAS grants by resource id, shared by concurrent users and revoked by the last. */
  private readonly grants = new Map<string, { url: Promise<string>; users: number }>();
  private readonly poll: { updateIntervalInMs?: number };
  /** VM restore points; their disk restore points go wherever a snapshot id goes. */
  private readonly points: AzureVmPoints;

  constructor(opts: AzureCloudOptions) {
    this.opts = opts;
    this.compute = new ComputeManagementClient(opts.credential, opts.subscriptionId, opts.computeOptions);
    this.poll = opts.pollIntervalMs === undefined ? {} : { updateIntervalInMs: opts.pollIntervalMs };
    this.points = new AzureVmPoints(this.compute, this.poll);
  }

  createVmPoint(req: VmPointRequest): Promise<VmPoint> {
    return this.points.create(req);
  }

  listGoldsnapVmPoints(): Promise<GoldsnapVmPoint[]> {
    return this.points.list();
  }

  async deleteVmPoint(id: string): Promise<void> {
    await this.points.delete(id, async (diskPointIds) => {
      for (const d of diskPointIds) {
        this.grants.delete(d);
        await this.points.revoke(d);
      }
    });
  }

  async listGoldsnapDisks(): Promise<Array<{ id: string; tags: Record<string, string>; attached: boolean }>> {
    const found: Array<{ id: string; tags: Record<string, string>; attached: boolean }> = [];
    for await (const d of this.compute.disks.list()) if (d.tags?.[GOLDSNAP_TAG] === 'true') found.push({ id: d.id!, tags: d.tags, attached: Boolean(d.managedBy) });
    return found;
  }

  createNetworkInterface(req: NetworkInterfaceRequest): Promise<string> {
    return createNetworkInterface(this.compute, this.armEndpoint, this.opts.subscriptionId, req, this.opts.pollIntervalMs ?? 2000);
  }

  deleteNetworkInterface(id: string): Promise<void> {
    return deleteNetworkInterface(this.compute, this.armEndpoint, id);
  }

  private get armEndpoint(): string {
    return this.opts.computeOptions?.endpoint ?? 'https://management.azure.com';
  }

  async ensureResourceGroup(name: string, region: string, tags: Record<string, string>): Promise<void> {
    await ensureResourceGroup(this.compute, this.opts.computeOptions?.endpoint ?? 'https://management.azure.com', this.opts.subscriptionId, name, region, tags);
  }

  knownRegion(region: string): boolean {
    return isAzureRegion(region);
  }

  runScript(vm: Pick<CloudVm, 'id'>, script: string, timeoutSeconds: number): Promise<ScriptResult> {
    return runGuestScript(this.compute, vm.id, script, timeoutSeconds, this.poll);
  }

  /**
   * A disk restore point's size: its disk's (a disk grows only, and a point is read soon after it is
   * taken), else the length of the blob behind a SAS. Not a SAS first: ending it would revoke every
   * SAS of the point, a proxy's reading it included.
   */
  private async diskPointSize(id: string, sourceDiskId: string | undefined): Promise<number> {
    if (sourceDiskId) {
      const { resourceGroup, name } = parseResourceId(sourceDiskId);
      const disk = await this.compute.disks.get(resourceGroup, name).catch((err) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      if (disk) return this.toCloudDisk(disk, 'data').sizeBytes;
    }
    const url = await this.acquire(id);
    try {
      return (await this.blob(url).getProperties()).contentLength ?? 0;
    } finally {
      await this.release(id);
    }
  }

  async listVms(): Promise<CloudVm[]> {
    const vms: CloudVm[] = [];
    for await (const vm of this.compute.virtualMachines.listAll()) vms.push(await this.toCloudVm(vm));
    return vms;
  }

  async getVm(id: string): Promise<CloudVm> {
    const { resourceGroup, name } = parseResourceId(id);
    return this.toCloudVm(await this.compute.virtualMachines.get(resourceGroup, name));
  }

  private async toCloudVm(vm: VirtualMachine): Promise<CloudVm> {
    const storage = vm.storageProfile;
    const refs: Array<{ id: string; role: 'os' | 'data'; lun?: number }> = [];
    if (storage?.osDisk?.managedDisk?.id) refs.push({ id: storage.osDisk.managedDisk.id, role: 'os' });
    for (const d of storage?.dataDisks ?? []) if (d.managedDisk?.id) refs.push({ id: d.managedDisk.id, role: 'data', lun: d.lun });
    const disks = await Promise.all(refs.map(async (ref) => {
      const { resourceGroup, name } = parseResourceId(ref.id);
      return this.toCloudDisk(await this.compute.disks.get(resourceGroup, name), ref.role, ref.lun);
    }));
    const id = vm.id!;
    const resourceGroup = parseResourceId(id).resourceGroup;
    return { id, name: vm.name!, region: vm.location, resourceGroup, tags: vm.tags ?? {}, disks, profile: machineProfile(vm, resourceGroup) };
  }

  private toCloudDisk(disk: Disk, role: 'os' | 'data', lun?: number): CloudDisk {
    const sizeBytes = disk.diskSizeBytes ?? (disk.diskSizeGB ?? 0) * 1024 ** 3;
    return { id: disk.id!, name: disk.name!, region: disk.location, sizeBytes, role, ...(lun === undefined ? {} : { lun }), profile: diskProfile(disk) };
  }

  private toCloudSnapshot(s: Snapshot): CloudSnapshot {
    return {
      id: s.id!, name: s.name!, diskId: s.creationData?.sourceResourceId ?? '', region: s.location,
      sizeBytes: s.diskSizeBytes ?? (s.diskSizeGB ?? 0) * 1024 ** 3, tags: s.tags ?? {},
      createdAt: (s.timeCreated ?? new Date()).toISOString(),
    };
  }

  async createSnapshot(req: SnapshotRequest): Promise<CloudSnapshot> {
    const { resourceGroup } = parseResourceId(req.disk.id);
    // Idempotent by name: a run resumed after a crash finds the snapshot it already asked for.
    const existing = await this.compute.snapshots.get(resourceGroup, req.name).catch((err) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (existing && !sameResource(existing.creationData?.sourceResourceId ?? '', req.disk.id)) {
      throw new Error(`snapshot ${req.name} already exists in ${resourceGroup} and is of another disk`);
    }
    const snapshot = existing?.provisioningState === 'Succeeded' ? existing : await this.compute.snapshots.beginCreateOrUpdateAndWait(resourceGroup, req.name, {
      location: req.disk.region,
      tags: req.tags,
      incremental: true, creationData: { createOption: 'Copy', sourceResourceId: req.disk.id },
    }, this.poll);
    return this.toCloudSnapshot(snapshot);
  }

  async waitForSnapshot(id: string): Promise<void> {
    if (parseDiskPointId(id)) return this.points.waitUntilReadable(id, this.opts.pollIntervalMs ?? 2000);
    const { resourceGroup, name } = parseResourceId(id);
    // An incremental snapshot is readable only once its background copy is complete.
    for (;;) {
      const snapshot = await this.compute.snapshots.get(resourceGroup, name);
      if (snapshot.copyCompletionError) throw new Error(`snapshot ${name} failed to copy: ${snapshot.copyCompletionError.errorMessage}`);
      if ((snapshot.completionPercent ?? 100) >= 100) return;
      await new Promise((resolve) => setTimeout(resolve, this.opts.pollIntervalMs ?? 2000));
    }
  }

  async getSnapshot(id: string): Promise<CloudSnapshot | undefined> {
    if (parseDiskPointId(id)) return this.points.get(id, (source) => this.diskPointSize(id, source));
    const { resourceGroup, name } = parseResourceId(id);
    try {
      return this.toCloudSnapshot(await this.compute.snapshots.get(resourceGroup, name));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async listGoldsnapSnapshots(): Promise<CloudSnapshot[]> {
    const found: CloudSnapshot[] = [];
    for await (const s of this.compute.snapshots.list()) if (s.tags?.[GOLDSNAP_TAG] === 'true') found.push(this.toCloudSnapshot(s));
    return found;
  }

  async deleteSnapshot(id: string): Promise<void> {
    // A disk restore point goes with its restore point (the other disks' ones are of the same instant).
    const point = vmPointIdOf(id);
    if (point) return this.deleteVmPoint(point);
    await this.deleteResource('snapshots', id);
  }

  /**
   * Deletes a snapshot or disk; absent is fine. A read grant left open by a proxy that was killed
   * blocks the delete (409) for hours: revoke it, then delete again.
   */
  private async deleteResource(kind: 'snapshots' | 'disks', id: string): Promise<void> {
    const { resourceGroup, name } = parseResourceId(id);
    const ops = kind === 'snapshots' ? this.compute.snapshots : this.compute.disks;
    for (let attempt = 0; ; attempt++) {
      try {
        await ops.beginDeleteAndWait(resourceGroup, name, this.poll);
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (!isConflict(err) || attempt > 0) throw err;
        this.grants.delete(id);
        await ops.beginRevokeAccessAndWait(resourceGroup, name, this.poll);
      }
    }
  }

  /** Grants read access to a snapshot (or reuses an open grant) and returns its SAS URL. */
  private async acquire(id: string, access: 'Read' | 'Write' = 'Read', kind: 'snapshots' | 'disks' = 'snapshots'): Promise<string> {
    let grant = this.grants.get(id);
    if (!grant) {
      const { resourceGroup, name } = parseDiskPointId(id) ?? parseResourceId(id);
      const ops = kind === 'snapshots' ? this.compute.snapshots : this.compute.disks;
      const url = parseDiskPointId(id) ? this.points.grant(id, ACCESS_SECONDS) : ops.beginGrantAccessAndWait(resourceGroup, name, { access, durationInSeconds: ACCESS_SECONDS }, this.poll).then((a) => {
        if (!a.accessSAS) throw new Error(`Azure granted access to ${name} without a SAS URL`);
        return a.accessSAS;
      });
      grant = { url, users: 0 };
      this.grants.set(id, grant);
      url.catch(() => this.grants.delete(id));
    }
    grant.users++;
    return grant.url;
  }

  private async release(id: string, kind: 'snapshots' | 'disks' = 'snapshots'): Promise<void> {
    const grant = this.grants.get(id);
    if (!grant || --grant.users > 0) return;
    this.grants.delete(id);
    if (parseDiskPointId(id)) return this.points.revoke(id);
    const { resourceGroup, name } = parseResourceId(id);
    const ops = kind === 'snapshots' ? this.compute.snapshots : this.compute.disks;
    await ops.beginRevokeAccessAndWait(resourceGroup, name, this.poll);
  }

  private blob(url: string): PageBlobClient {
    // The SAS in the URL is the credential.
    return new PageBlobClient(url, new AnonymousCredential(), this.opts.blobOptions);
  }

  async allocatedRanges(snapshot: CloudSnapshot): Promise<ByteRange[]> {
    const url = await this.acquire(snapshot.id);
    try {
      const client = this.blob(url);
      const ranges: ByteRange[] = [];
      for await (const r of client.listPageRanges(0, snapshot.sizeBytes)) {
        if (!r.isClear) ranges.push({ offset: r.start, length: r.end - r.start + 1 });
      }
      return ranges;
    } finally {
      await this.release(snapshot.id);
    }
  }

  async changedRanges(base: CloudSnapshot, snapshot: CloudSnapshot): Promise<ByteRange[]> {
    const baseUrl = await this.acquire(base.id);
    try {
      const client = this.blob(await this.acquire(snapshot.id));
      try {
        const ranges: ByteRange[] = [];
        const diff = async (offset: number, count: number): Promise<void> => {
          const page = await client.getPageRangesDiffForManagedDisks(offset, count, baseUrl);
          // A truncated answer (more than 10,000 ranges) would silently miss changes: ask in halves.
          // The typed response drops the NextMarker that the generated model parses into continuationToken.
          if ((page._response.parsedBody as { continuationToken?: string }).continuationToken) {
            if (count <= MIN_PAGE_RANGE_SEGMENT) throw new Error(`Azure returned an incomplete list of changed ranges for ${count} bytes of ${snapshot.name}`);
            const half = Math.ceil(count / 2 / 512) * 512;
            await diff(offset, half);
            await diff(offset + half, count - half);
            return;
          }
          // Cleared pages changed too: they now read as zeros. The SDK reports `count` as end - start
          // of Azure's inclusive ranges, so the byte length is count + 1.
          for (const r of [...(page.pageRange ?? []), ...(page.clearRange ?? [])]) ranges.push({ offset: r.offset, length: (r.count ?? 0) + 1 });
        };
        for (let offset = 0; offset < snapshot.sizeBytes; offset += PAGE_RANGE_SEGMENT) {
          await diff(offset, Math.min(PAGE_RANGE_SEGMENT, snapshot.sizeBytes - offset));
        }
        return ranges.sort((a, b) => a.offset - b.offset);
      } finally {
        await this.release(snapshot.id);
      }
    } finally {
      await this.release(base.id);
    }
  }

  async openSnapshot(snapshot: CloudSnapshot): Promise<DiskReader> {
    const client = this.blob(await this.acquire(snapshot.id));
    let closed = false;
    return {
      sizeBytes: snapshot.sizeBytes,
      read: async (offset, into) => {
        await client.downloadToBuffer(Buffer.from(into.buffer, into.byteOffset, into.byteLength), offset, into.byteLength, { concurrency: 1 });
      },
      close: async () => {
        if (closed) return;
        closed = true;
        await this.release(snapshot.id);
      },
    };
  }

  async createDiskForRestore(req: RestoreDiskRequest): Promise<{ disk: CloudDisk; writer: DiskWriter }> {
    if (req.sizeBytes % (1024 * 1024) !== 0) throw new Error(`a disk to upload must be a whole number of MiB; ${req.sizeBytes} bytes is not`);
    const created = await this.compute.disks.beginCreateOrUpdateAndWait(req.resourceGroup, req.name, {
      location: req.region, tags: req.tags, ...uploadDiskProperties(req.profile),
      creationData: { createOption: 'Upload', uploadSizeBytes: req.sizeBytes + VHD_FOOTER_BYTES },
    }, this.poll);
    const disk = { ...this.toCloudDisk(created, 'data'), sizeBytes: req.sizeBytes };
    const client = this.blob(await this.acquire(disk.id, 'Write', 'disks'));
    const writer: DiskWriter = {
      zeroFilled: true,
      write: async (offset, data) => {
        for (let at = 0; at < data.byteLength; at += MAX_PUT_PAGE) {
          const piece = data.subarray(at, Math.min(data.byteLength, at + MAX_PUT_PAGE));
          await client.uploadPages(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength), offset + at, piece.byteLength);
        }
      },
      commit: async () => {
        await client.uploadPages(fixedVhdFooter(req.sizeBytes), req.sizeBytes, VHD_FOOTER_BYTES);
        await this.release(disk.id, 'disks');
      },
      abort: async () => {
        await this.release(disk.id, 'disks').catch(() => undefined);
        await this.deleteDisk(disk.id);
      },
    };
    return { disk, writer };
  }

  async deleteDisk(id: string): Promise<void> {
    await this.deleteResource('disks', id);
  }

  async findResource(kind: 'disk' | 'vm', resourceGroup: string, name: string): Promise<{ id: string; tags: Record<string, string> } | undefined> {
    try {
      const found = kind === 'disk' ? await this.compute.disks.get(resourceGroup, name) : await this.compute.virtualMachines.get(resourceGroup, name);
      return { id: found.id!, tags: found.tags ?? {} };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async createVm(req: CreateVmRequest): Promise<CloudVm> {
    const vm = await this.compute.virtualMachines.beginCreateOrUpdateAndWait(req.resourceGroup, req.name, {
      location: req.region, tags: req.tags, ...(req.zone ? { zones: [req.zone] } : {}),
      hardwareProfile: { vmSize: req.size ?? this.opts.vmSize ?? 'Standard_D2s_v5' },
      ...(req.securityType && req.securityType !== 'Standard' ? { securityProfile: vmSecurityProfile(req.securityType) } : {}),
      storageProfile: {
        osDisk: { osType: osTypeOf(req.osDisk.profile), createOption: 'Attach', managedDisk: { id: req.osDisk.id } },
        dataDisks: req.dataDisks.map((d, i) => ({ lun: d.lun ?? i, createOption: 'Attach', managedDisk: { id: d.id } })),
      },
      // Azure needs a network interface for a VM; Goldsnap attaches the one given, it makes none.
      ...(req.networkInterfaceId ? { networkProfile: { networkInterfaces: [{ id: req.networkInterfaceId, primary: true }] } } : {}),
    }, this.poll);
    return this.toCloudVm(vm);
  }
}
