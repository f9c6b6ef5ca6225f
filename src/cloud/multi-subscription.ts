import type { ByteRange } from '../dataplane/byte-ranges.ts';
import type { DiskReader, DiskWriter } from '../dataplane/disk-io.ts';
import type {
  Cloud,
  CloudDisk,
  CloudSnapshot,
  CloudVm,
  CreateVmRequest,
  GoldsnapVmPoint,
  RestoreDiskRequest,
  ScriptResult,
  SnapshotRequest,
  VmPoint,
  VmPointRequest,
} from './cloud.ts';

/** The subscription named in an Azure resource id (/subscriptions/{id}/…), lower-cased. */
export function subscriptionOfId(id: string): string {
  const m = /^\/subscriptions\/([^/]+)\//i.exec(id);
  if (!m) throw new Error(`${id} is not an Azure resource id (/subscriptions/…)`);
  return m[1]!.toLowerCase();
}

/**
 * One cloud over several Azure subscriptions: one adapter per subscription, VMs listed across all
 * of them, and each operation sent to the adapter of the subscription in its resource id. Requests
 * that make something new (a restored disk, VM, resource group, network interface) name their
 * subscription; without one they go to the first.
 */
export class MultiSubscriptionCloud implements Cloud {
  readonly kind: string;
  readonly subscriptionIds: string[];
  private readonly clouds: Map<string, Cloud>;
  private readonly first: Cloud;

  constructor(clouds: Array<{ subscriptionId: string; cloud: Cloud }>) {
    if (clouds.length === 0) throw new Error('MultiSubscriptionCloud needs at least one subscription');
    this.subscriptionIds = clouds.map((c) => c.subscriptionId);
    this.clouds = new Map(clouds.map((c) => [c.subscriptionId.toLowerCase(), c.cloud]));
    this.first = clouds[0]!.cloud;
    this.kind = this.first.kind;
  }

  /** Is this one of the subscriptions Goldsnap works on? (A restore elsewhere is refused up front.) */
  knowsSubscription(subscriptionId: string): boolean {
    return this.clouds.has(subscriptionId.toLowerCase());
  }

  private bySubscription(subscriptionId: string | undefined): Cloud {
    if (subscriptionId === undefined) return this.first;
    const c = this.clouds.get(subscriptionId.toLowerCase());
    if (!c)
      throw new Error(
        `subscription ${subscriptionId} is not one Goldsnap works on (${this.subscriptionIds.join(', ')}): add it to AZURE_SUBSCRIPTION_IDS`,
      );
    return c;
  }

  private byId(id: string): Cloud {
    return this.bySubscription(subscriptionOfId(id));
  }

  private async all<T>(fn: (c: Cloud) => Promise<T[]> | undefined): Promise<T[]> {
    const lists = await Promise.all([...this.clouds.values()].map((c) => fn(c) ?? Promise.resolve([])));
    return lists.flat();
  }

  listVms(): Promise<CloudVm[]> {
    return this.all((c) => c.listVms());
  }
  getVm(id: string): Promise<CloudVm> {
    return this.byId(id).getVm(id);
  }
  createSnapshot(req: SnapshotRequest): Promise<CloudSnapshot> {
    return this.byId(req.disk.id).createSnapshot(req);
  }
  waitForSnapshot(id: string): Promise<void> {
    return this.byId(id).waitForSnapshot(id);
  }
  getSnapshot(id: string): Promise<CloudSnapshot | undefined> {
    return this.byId(id).getSnapshot(id);
  }
  listGoldsnapSnapshots(): Promise<CloudSnapshot[]> {
    return this.all((c) => c.listGoldsnapSnapshots());
  }
  deleteSnapshot(id: string): Promise<void> {
    return this.byId(id).deleteSnapshot(id);
  }
  allocatedRanges(snapshot: CloudSnapshot): Promise<ByteRange[]> {
    return this.byId(snapshot.id).allocatedRanges(snapshot);
  }
  changedRanges(base: CloudSnapshot, snapshot: CloudSnapshot): Promise<ByteRange[]> {
    return this.byId(snapshot.id).changedRanges(base, snapshot);
  }
  openSnapshot(snapshot: CloudSnapshot): Promise<DiskReader> {
    return this.byId(snapshot.id).openSnapshot(snapshot);
  }
  createDiskForRestore(req: RestoreDiskRequest): Promise<{ disk: CloudDisk; writer: DiskWriter }> {
    return this.bySubscription(req.subscriptionId).createDiskForRestore(req);
  }
  deleteDisk(id: string): Promise<void> {
    return this.byId(id).deleteDisk(id);
  }
  findResource(
    kind: 'disk' | 'vm',
    resourceGroup: string,
    name: string,
    subscriptionId?: string,
  ): Promise<{ id: string; tags: Record<string, string> } | undefined> {
    return this.bySubscription(subscriptionId).findResource(kind, resourceGroup, name);
  }
  async releaseLeftoverAccess(): Promise<number> {
    let n = 0;
    for (const c of this.clouds.values()) n += (await c.releaseLeftoverAccess?.()) ?? 0;
    return n;
  }
  createVmPoint(req: VmPointRequest): Promise<VmPoint> {
    const c = this.byId(req.vm.id);
    if (!c.createVmPoint) throw new Error(`the ${c.kind} cloud has no VM points`);
    return c.createVmPoint(req);
  }
  listGoldsnapVmPoints(): Promise<GoldsnapVmPoint[]> {
    return this.all((c) => c.listGoldsnapVmPoints?.());
  }
  async deleteVmPoint(id: string): Promise<void> {
    await this.byId(id).deleteVmPoint?.(id);
  }
  listGoldsnapDisks(): Promise<Array<{ id: string; tags: Record<string, string>; attached: boolean }>> {
    return this.all((c) => c.listGoldsnapDisks?.());
  }
  createNetworkInterface(req: {
    name: string;
    resourceGroup: string;
    region: string;
    subnetId: string;
    tags: Record<string, string>;
    subscriptionId?: string;
  }): Promise<string> {
    const c = this.bySubscription(req.subscriptionId);
    if (!c.createNetworkInterface) throw new Error(`the ${c.kind} cloud cannot create network interfaces`);
    return c.createNetworkInterface(req);
  }
  async deleteNetworkInterface(id: string): Promise<void> {
    await this.byId(id).deleteNetworkInterface?.(id);
  }
  async ensureResourceGroup(
    name: string,
    region: string,
    tags: Record<string, string>,
    subscriptionId?: string,
  ): Promise<void> {
    await this.bySubscription(subscriptionId).ensureResourceGroup?.(name, region, tags);
  }
  knownRegion(region: string): boolean {
    return this.first.knownRegion?.(region) ?? true;
  }
  runScript(vm: Pick<CloudVm, 'id'>, script: string, timeoutSeconds: number): Promise<ScriptResult> {
    const c = this.byId(vm.id);
    if (!c.runScript) throw new Error(`the ${c.kind} cloud cannot run scripts in a guest`);
    return c.runScript(vm, script, timeoutSeconds);
  }
  createVm(req: CreateVmRequest): Promise<CloudVm> {
    return this.bySubscription(req.subscriptionId).createVm(req);
  }
}
