import type { TokenCredential } from '@azure/core-auth';
import {
  ComputeManagementClient,
  type ComputeManagementClientOptionalParams,
  type Disk,
  type Snapshot,
  type VirtualMachine,
} from '@azure/arm-compute';
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
import {
  GOLDSNAP_TAG,
  type Cloud,
  type CloudDisk,
  type CloudSnapshot,
  type CloudVm,
  type CreateVmRequest,
  type GoldsnapVmPoint,
  type RestoreDiskRequest,
  type ScriptResult,
  type SnapshotRequest,
  type VmPoint,
  type VmPointRequest,
} from './cloud.ts';
import { fixedVhdFooter, VHD_FOOTER_BYTES } from './vhd-footer.ts';
import { isFamilySasLimit, SasGrants, type SasLease } from './azure-sas.ts';
import { DiffRefusedError } from './diff-refused.ts';
import { snapshotLimitOf } from './snapshot-limits.ts';
import { errorMessage } from '../util/errors.ts';

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
  /** How long a SAS is asked for; it is renewed before it expires (default 1 hour). */
  sasDurationSeconds?: number;
  /**
   * How long a read waits when Azure refuses a SAS because 5 snapshots of the family already have
   * one (held by another process) before it fails (default: an hour, the longest such a grant of
   * Goldsnap's lives).
   */
  familySasWaitMs?: number;
}

const ACCESS_SECONDS = 3600;
/** Azure lets at most 5 snapshots of one incremental snapshot family have an active SAS. */
const SAS_PER_FAMILY = 5;
/** Get Page Ranges on a whole large disk can time out; Azure advises asking in segments. */
const PAGE_RANGE_SEGMENT = 8 * 1024 ** 3;
/**
 * Chunk reads a data proxy keeps in flight per disk: each waits a round trip to the storage
 * service, which the chunk codec alone (2 per core) does not cover.
 */
const READS_IN_FLIGHT = 16;
/** Put Page takes at most 4 MiB per request. */
const MAX_PUT_PAGE = 4 * 1024 ** 2;

function isNotFound(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 404;
}

function isConflict(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 409;
}

/**
 * A diff (which the SDK cannot page for managed disks) that comes back truncated at 10,000 ranges
 * is asked again in halves, down to this: 4 MiB holds at most 4,096 separate 512-byte ranges, so
 * an answer for it is always whole.
 */
const MIN_PAGE_RANGE_SEGMENT = 4 * 1024 ** 2;

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

function errorCodeOf(err: unknown): string | undefined {
  const e = err as { code?: string; details?: { errorCode?: string } };
  return e.details?.errorCode ?? e.code;
}

/** Azure answers a request for the page ranges of too fragmented a span with 500 OperationTimedOut. */
function isServerTimeout(err: unknown): boolean {
  return statusOf(err) === 500 && errorCodeOf(err) === 'OperationTimedOut';
}

/** Seconds a 429 asks to wait (Retry-After), or undefined when `err` is not throttling. */
function throttledFor(err: unknown): number | undefined {
  if (statusOf(err) !== 429) return undefined;
  const h = (err as { response?: { headers?: { get(name: string): string | undefined } } }).response?.headers?.get(
    'retry-after',
  );
  const n = Number(h);
  return Number.isFinite(n) && n >= 0 ? n : 5;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The `azure` cloud on the official SDKs: @azure/arm-compute for VMs, disks and snapshots,
 * @azure/storage-blob for the page-blob data behind a snapshot's or disk's SAS URL. It runs
 * against real Azure or the emulator (src/emulator) without change.
 */
export class AzureCloud implements Cloud {
  readonly kind = 'azure';
  private readonly compute: ComputeManagementClient;
  private readonly opts: AzureCloudOptions;
  /** Open SAS grants by resource id, shared by concurrent users, renewed before expiry, revoked by the last. */
  readonly grants: SasGrants;
  private readonly poll: { updateIntervalInMs?: number };
  /** Snapshots holding a SAS, by incremental snapshot family: a sixth waits for one to end. */
  private readonly familySas = new Map<string, { holders: Set<string>; waiters: Array<() => void> }>();
  /** VM restore points; their disk restore points go wherever a snapshot id goes. */
  private readonly points: AzureVmPoints;
  /** SAS requests Azure refused because the snapshot family had 5 already, then tried again (for the figures). */
  familySasRetries = 0;

  constructor(opts: AzureCloudOptions) {
    this.opts = opts;
    // The SDK pipeline retries 429 (after Retry-After), 5xx and dropped connections; a bad day on
    // Azure needs more than its default 3 tries.
    this.compute = new ComputeManagementClient(opts.credential, opts.subscriptionId, {
      ...opts.computeOptions,
      retryOptions: { maxRetries: 8, ...opts.computeOptions?.retryOptions },
    });
    this.poll = opts.pollIntervalMs === undefined ? {} : { updateIntervalInMs: opts.pollIntervalMs };
    this.grants = new SasGrants(
      {
        grant: (id, access, kind) => this.grantAccess(id, access, kind),
        revoke: async (id, kind) => {
          // A disk restore point's access is the restore point's (azure-restore-points.ts).
          if (parseDiskPointId(id)) return this.points.revoke(id);
          const { resourceGroup, name } = parseResourceId(id);
          try {
            await (kind === 'snapshots' ? this.compute.snapshots : this.compute.disks).beginRevokeAccessAndWait(
              resourceGroup,
              name,
              this.poll,
            );
          } finally {
            this.leaveFamily(id);
          }
        },
      },
      opts.sasDurationSeconds ?? ACCESS_SECONDS,
    );
    this.points = new AzureVmPoints(this.compute, this.poll);
  }

  /** The one subscription this adapter works on (src/cloud/multi-subscription.ts joins several). */
  knowsSubscription(subscriptionId: string): boolean {
    return subscriptionId.toLowerCase() === this.opts.subscriptionId.toLowerCase();
  }

  /**
   * beginGetAccess, after a look at the resource: a disk locked down by networkAccessPolicy gets an
   * error that says what to change, and one with dataAccessAuthMode AzureActiveDirectory is read
   * with the credential's Entra token besides the SAS.
   */
  private async grantAccess(
    id: string,
    access: 'Read' | 'Write',
    kind: 'snapshots' | 'disks',
  ): Promise<{ url: string; aad: boolean }> {
    if (parseDiskPointId(id))
      return { url: await this.points.grant(id, this.opts.sasDurationSeconds ?? ACCESS_SECONDS), aad: false };
    const { resourceGroup, name } = parseResourceId(id);
    const ops = kind === 'snapshots' ? this.compute.snapshots : this.compute.disks;
    const res: Disk | Snapshot = await ops.get(resourceGroup, name);
    const what =
      kind === 'snapshots'
        ? `snapshot ${name}${res.creationData?.sourceResourceId ? ` (of disk ${parseResourceId(res.creationData.sourceResourceId).name})` : ''}`
        : `disk ${name}`;
    if (res.networkAccessPolicy === 'DenyAll') {
      throw new Error(
        `cannot read ${what}: its networkAccessPolicy is DenyAll, which blocks export of its data. Set networkAccessPolicy to AllowAll on the disk (and its snapshots), or AllowPrivate with a disk access resource reachable from the data proxy; check the Azure Policy that may enforce DenyAll.`,
      );
    }
    const family = (res as Snapshot).incrementalSnapshotFamilyId;
    if (kind === 'snapshots' && family) await this.joinFamily(family, id);
    try {
      const a = await this.grantWhenFamilyAllows(what, () =>
        ops.beginGrantAccessAndWait(
          resourceGroup,
          name,
          { access, durationInSeconds: this.opts.sasDurationSeconds ?? ACCESS_SECONDS },
          this.poll,
        ),
      );
      if (!a.accessSAS) throw new Error(`Azure granted access to ${name} without a SAS URL`);
      return { url: a.accessSAS, aad: res.dataAccessAuthMode === 'AzureActiveDirectory' };
    } catch (err) {
      this.leaveFamily(id);
      throw err;
    }
  }

  /**
   * Azure refuses a sixth SAS in a snapshot family; the five may be held by another process (or
   * one killed mid-read, until its grant expires). Try again after a back-off, up to
   * `familySasWaitMs`, rather than failing the read.
   */
  private async grantWhenFamilyAllows<T>(what: string, grant: () => Promise<T>): Promise<T> {
    const maxWaitMs = this.opts.familySasWaitMs ?? ACCESS_SECONDS * 1000;
    const since = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await grant();
      } catch (err) {
        if (!isFamilySasLimit(err)) throw err;
        const remaining = since + maxWaitMs - Date.now();
        if (remaining <= 0) {
          throw new Error(
            `cannot read ${what}: Azure allows a SAS on at most 5 snapshots of one incremental snapshot family, and 5 of its family have one (held by another process or a reader that died). Waited ${Math.round(maxWaitMs / 1000)} s for one to end; revoke access (endGetAccess) on the family's snapshots no one reads, then try again. Azure said: ${errorMessage(err).split('\n')[0]}`,
          );
        }
        this.familySasRetries++;
        await sleep(Math.min(remaining, Math.min(30_000, 1000 * 2 ** attempt)));
      }
    }
  }

  /** Takes one of the family's SAS places for snapshot `id` (kept across renewals), waiting for one if all are taken. */
  private async joinFamily(family: string, id: string): Promise<void> {
    for (;;) {
      let f = this.familySas.get(family);
      if (!f) this.familySas.set(family, (f = { holders: new Set(), waiters: [] }));
      if (f.holders.has(id)) return;
      if (f.holders.size < SAS_PER_FAMILY) {
        f.holders.add(id);
        return;
      }
      await new Promise<void>((resolve) => f.waiters.push(resolve));
    }
  }

  private leaveFamily(id: string): void {
    for (const [family, f] of this.familySas) {
      if (!f.holders.delete(id)) continue;
      for (const wake of f.waiters.splice(0)) wake();
      if (f.holders.size === 0 && f.waiters.length === 0) this.familySas.delete(family);
    }
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
        this.grants.forget(d);
        await this.points.revoke(d);
      }
    });
  }

  async listGoldsnapDisks(): Promise<Array<{ id: string; tags: Record<string, string>; attached: boolean }>> {
    const found: Array<{ id: string; tags: Record<string, string>; attached: boolean }> = [];
    for await (const d of this.compute.disks.list())
      if (d.tags?.[GOLDSNAP_TAG] === 'true') found.push({ id: d.id!, tags: d.tags, attached: Boolean(d.managedBy) });
    return found;
  }

  createNetworkInterface(req: NetworkInterfaceRequest): Promise<string> {
    return createNetworkInterface(
      this.compute,
      this.armEndpoint,
      this.opts.subscriptionId,
      req,
      this.opts.pollIntervalMs ?? 2000,
    );
  }

  deleteNetworkInterface(id: string): Promise<void> {
    return deleteNetworkInterface(this.compute, this.armEndpoint, id);
  }

  private get armEndpoint(): string {
    return this.opts.computeOptions?.endpoint ?? 'https://management.azure.com';
  }

  async ensureResourceGroup(name: string, region: string, tags: Record<string, string>): Promise<void> {
    await ensureResourceGroup(
      this.compute,
      this.opts.computeOptions?.endpoint ?? 'https://management.azure.com',
      this.opts.subscriptionId,
      name,
      region,
      tags,
    );
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
    const lease = await this.grants.acquire(id);
    try {
      return await lease.run(async (url, aad) => (await this.blob(url, aad).getProperties()).contentLength ?? 0);
    } finally {
      await lease.release();
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
    for (const d of storage?.dataDisks ?? [])
      if (d.managedDisk?.id) refs.push({ id: d.managedDisk.id, role: 'data', lun: d.lun });
    const disks = await Promise.all(
      refs.map(async (ref) => {
        const { resourceGroup, name } = parseResourceId(ref.id);
        return this.toCloudDisk(await this.compute.disks.get(resourceGroup, name), ref.role, ref.lun);
      }),
    );
    const id = vm.id!;
    const resourceGroup = parseResourceId(id).resourceGroup;
    return {
      id,
      name: vm.name!,
      region: vm.location,
      resourceGroup,
      tags: vm.tags ?? {},
      disks,
      profile: machineProfile(vm, resourceGroup),
    };
  }

  private toCloudDisk(disk: Disk, role: 'os' | 'data', lun?: number): CloudDisk {
    const sizeBytes = disk.diskSizeBytes ?? (disk.diskSizeGB ?? 0) * 1024 ** 3;
    return {
      id: disk.id!,
      name: disk.name!,
      region: disk.location,
      sizeBytes,
      role,
      ...(lun === undefined ? {} : { lun }),
      profile: diskProfile(disk),
    };
  }

  private toCloudSnapshot(s: Snapshot): CloudSnapshot {
    return {
      id: s.id!,
      name: s.name!,
      diskId: s.creationData?.sourceResourceId ?? '',
      region: s.location,
      sizeBytes: s.diskSizeBytes ?? (s.diskSizeGB ?? 0) * 1024 ** 3,
      tags: s.tags ?? {},
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
    const snapshot =
      existing?.provisioningState === 'Succeeded'
        ? existing
        : await this.compute.snapshots
            .beginCreateOrUpdateAndWait(
              resourceGroup,
              req.name,
              {
                location: req.disk.region,
                tags: req.tags,
                incremental: true,
                creationData: { createOption: 'Copy', sourceResourceId: req.disk.id },
              },
              this.poll,
            )
            .catch((err) => {
              // Azure's snapshot limits, told apart so the run can wait out those that clear with time.
              throw snapshotLimitOf(err, req.disk.name) ?? err;
            });
    return this.toCloudSnapshot(snapshot);
  }

  async waitForSnapshot(id: string): Promise<void> {
    if (parseDiskPointId(id)) return this.points.waitUntilReadable(id, this.opts.pollIntervalMs ?? 2000);
    const { resourceGroup, name } = parseResourceId(id);
    // An incremental snapshot is readable only once its background copy is complete.
    for (;;) {
      let snapshot: Snapshot;
      try {
        snapshot = await this.compute.snapshots.get(resourceGroup, name);
      } catch (err) {
        // Throttled past the pipeline's own retries: wait as long as Azure asks, then poll again.
        const wait = throttledFor(err);
        if (wait === undefined) throw err;
        await sleep(wait * 1000);
        continue;
      }
      if (snapshot.copyCompletionError)
        throw new Error(`snapshot ${name} failed to copy: ${snapshot.copyCompletionError.errorMessage}`);
      if ((snapshot.completionPercent ?? 100) >= 100) return;
      await sleep(this.opts.pollIntervalMs ?? 2000);
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
    for await (const s of this.compute.snapshots.list())
      if (s.tags?.[GOLDSNAP_TAG] === 'true') found.push(this.toCloudSnapshot(s));
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
        this.grants.forget(id);
        this.leaveFamily(id);
        await ops.beginRevokeAccessAndWait(resourceGroup, name, this.poll);
      }
    }
  }

  private blob(url: string, aad = false): PageBlobClient {
    // The SAS in the URL is the credential; a disk with dataAccessAuthMode AzureActiveDirectory
    // also wants the Entra token of our own credential on every request.
    return new PageBlobClient(url, aad ? this.opts.credential : new AnonymousCredential(), this.opts.blobOptions);
  }

  /**
   * Page ranges of [offset, offset + count), following NextMarker; a span that times out
   * server-side (too fragmented) is asked again in halves.
   */
  private async listRanges(lease: SasLease, offset: number, count: number, into: ByteRange[]): Promise<void> {
    try {
      const found = await lease.run(async (url, aad) => {
        const out: ByteRange[] = [];
        for await (const page of this.blob(url, aad).listPageRanges(offset, count).byPage()) {
          for (const r of page.pageRange ?? []) out.push({ offset: r.start, length: r.end - r.start + 1 });
        }
        return out;
      });
      into.push(...found);
    } catch (err) {
      if (!isServerTimeout(err) || count <= MIN_PAGE_RANGE_SEGMENT) throw err;
      const half = Math.ceil(count / 2 / 512) * 512;
      await this.listRanges(lease, offset, half, into);
      await this.listRanges(lease, offset + half, count - half, into);
    }
  }

  async allocatedRanges(snapshot: CloudSnapshot): Promise<ByteRange[]> {
    const lease = await this.grants.acquire(snapshot.id);
    try {
      const ranges: ByteRange[] = [];
      // In segments, as Azure advises for large disks: a whole-disk request can time out.
      for (let offset = 0; offset < snapshot.sizeBytes; offset += PAGE_RANGE_SEGMENT) {
        await this.listRanges(lease, offset, Math.min(PAGE_RANGE_SEGMENT, snapshot.sizeBytes - offset), ranges);
      }
      return ranges;
    } finally {
      await lease.release();
    }
  }

  async changedRanges(base: CloudSnapshot, snapshot: CloudSnapshot): Promise<ByteRange[]> {
    const baseLease = await this.grants.acquire(base.id);
    try {
      const lease = await this.grants.acquire(snapshot.id);
      try {
        const ranges: ByteRange[] = [];
        const ask = async (offset: number, count: number) => {
          for (let attempt = 0; ; attempt++) {
            const { url: baseUrl } = await baseLease.url();
            try {
              return await lease.run((url, aad) =>
                this.blob(url, aad).getPageRangesDiffForManagedDisks(offset, count, baseUrl),
              );
            } catch (err) {
              // The previous snapshot's SAS may have expired too: renew it once before believing a refusal.
              const refused = statusOf(err) === 409 && errorCodeOf(err) === 'PreviousSnapshotNotFound';
              if (refused && attempt === 0) {
                await baseLease.renew(baseUrl);
                continue;
              }
              if (refused)
                throw new DiffRefusedError(`${snapshot.name} and ${base.name}: ${errorMessage(err).split('\n')[0]}`);
              throw err;
            }
          }
        };
        const diff = async (offset: number, count: number): Promise<void> => {
          let page;
          try {
            page = await ask(offset, count);
          } catch (err) {
            if (!isServerTimeout(err) || count <= MIN_PAGE_RANGE_SEGMENT) throw err;
            page = undefined;
          }
          // A truncated answer (more than 10,000 ranges) would silently miss changes, and the SDK
          // cannot page a managed-disk diff: ask in halves. The typed response leaves out the
          // NextMarker, which the generated model parses into a continuationToken the object keeps.
          if (!page || (page as { continuationToken?: string }).continuationToken) {
            if (count <= MIN_PAGE_RANGE_SEGMENT)
              throw new Error(
                `Azure returned an incomplete list of changed ranges for ${count} bytes of ${snapshot.name}`,
              );
            const half = Math.ceil(count / 2 / 512) * 512;
            await diff(offset, half);
            await diff(offset + half, count - half);
            return;
          }
          // Cleared pages changed too: they now read as zeros. The SDK reports `count` as end - start
          // of Azure's inclusive ranges, so the byte length is count + 1.
          for (const r of [...(page.pageRange ?? []), ...(page.clearRange ?? [])])
            ranges.push({ offset: r.offset, length: (r.count ?? 0) + 1 });
        };
        for (let offset = 0; offset < snapshot.sizeBytes; offset += PAGE_RANGE_SEGMENT) {
          await diff(offset, Math.min(PAGE_RANGE_SEGMENT, snapshot.sizeBytes - offset));
        }
        return ranges.sort((a, b) => a.offset - b.offset);
      } finally {
        await lease.release();
      }
    } finally {
      await baseLease.release();
    }
  }

  async openSnapshot(snapshot: CloudSnapshot): Promise<DiskReader> {
    const lease = await this.grants.acquire(snapshot.id);
    let client: { url: string; blob: PageBlobClient } | undefined;
    let closed = false;
    return {
      sizeBytes: snapshot.sizeBytes,
      readAhead: READS_IN_FLIGHT,
      read: async (offset, into) => {
        // A SAS that expires mid-disk is renewed and the read goes on where it was.
        await lease.run(async (url, aad) => {
          if (client?.url !== url) client = { url, blob: this.blob(url, aad) };
          await client.blob.downloadToBuffer(
            Buffer.from(into.buffer, into.byteOffset, into.byteLength),
            offset,
            into.byteLength,
            { concurrency: 1, maxRetryRequestsPerBlock: 8 },
          );
        });
      },
      close: async () => {
        if (closed) return;
        closed = true;
        await lease.release();
      },
    };
  }

  /**
   * Revokes the read grants Goldsnap left open on its snapshots (a proxy killed mid-read leaves
   * one for hours, which blocks the snapshot's deletion and counts against Azure's 5 per family).
   */
  async releaseLeftoverAccess(): Promise<number> {
    let n = 0;
    for await (const s of this.compute.snapshots.list()) {
      if (s.tags?.[GOLDSNAP_TAG] !== 'true' || s.diskState !== 'ActiveSAS') continue;
      const { resourceGroup, name } = parseResourceId(s.id!);
      await this.compute.snapshots.beginRevokeAccessAndWait(resourceGroup, name, this.poll);
      n++;
    }
    return n;
  }

  async createDiskForRestore(req: RestoreDiskRequest): Promise<{ disk: CloudDisk; writer: DiskWriter }> {
    if (req.sizeBytes % (1024 * 1024) !== 0)
      throw new Error(`a disk to upload must be a whole number of MiB; ${req.sizeBytes} bytes is not`);
    const created = await this.compute.disks.beginCreateOrUpdateAndWait(
      req.resourceGroup,
      req.name,
      {
        location: req.region,
        tags: req.tags,
        ...uploadDiskProperties(req.profile),
        creationData: { createOption: 'Upload', uploadSizeBytes: req.sizeBytes + VHD_FOOTER_BYTES },
      },
      this.poll,
    );
    const disk = { ...this.toCloudDisk(created, 'data'), sizeBytes: req.sizeBytes };
    const lease = await this.grants.acquire(disk.id, 'Write', 'disks');
    const put = (data: Buffer, offset: number) =>
      lease.run((url, aad) => this.blob(url, aad).uploadPages(data, offset, data.byteLength));
    const writer: DiskWriter = {
      zeroFilled: true,
      write: async (offset, data) => {
        for (let at = 0; at < data.byteLength; at += MAX_PUT_PAGE) {
          const piece = data.subarray(at, Math.min(data.byteLength, at + MAX_PUT_PAGE));
          await put(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength), offset + at);
        }
      },
      commit: async () => {
        await put(fixedVhdFooter(req.sizeBytes), req.sizeBytes);
        await lease.release();
      },
      abort: async () => {
        await lease.release().catch(() => undefined);
        await this.deleteDisk(disk.id);
      },
    };
    return { disk, writer };
  }

  async deleteDisk(id: string): Promise<void> {
    await this.deleteResource('disks', id);
  }

  async findResource(
    kind: 'disk' | 'vm',
    resourceGroup: string,
    name: string,
  ): Promise<{ id: string; tags: Record<string, string> } | undefined> {
    try {
      const found =
        kind === 'disk'
          ? await this.compute.disks.get(resourceGroup, name)
          : await this.compute.virtualMachines.get(resourceGroup, name);
      return { id: found.id!, tags: found.tags ?? {} };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async createVm(req: CreateVmRequest): Promise<CloudVm> {
    const vm = await this.compute.virtualMachines.beginCreateOrUpdateAndWait(
      req.resourceGroup,
      req.name,
      {
        location: req.region,
        tags: req.tags,
        ...(req.zone ? { zones: [req.zone] } : {}),
        hardwareProfile: { vmSize: req.size ?? this.opts.vmSize ?? 'Standard_D2s_v5' },
        ...(req.securityType && req.securityType !== 'Standard'
          ? { securityProfile: vmSecurityProfile(req.securityType) }
          : {}),
        storageProfile: {
          osDisk: { osType: osTypeOf(req.osDisk.profile), createOption: 'Attach', managedDisk: { id: req.osDisk.id } },
          dataDisks: req.dataDisks.map((d, i) => ({
            lun: d.lun ?? i,
            createOption: 'Attach',
            managedDisk: { id: d.id },
          })),
        },
        // Azure needs a network interface for a VM; Goldsnap attaches the one given, it makes none.
        ...(req.networkInterfaceId
          ? { networkProfile: { networkInterfaces: [{ id: req.networkInterfaceId, primary: true }] } }
          : {}),
      },
      this.poll,
    );
    return this.toCloudVm(vm);
  }
}
