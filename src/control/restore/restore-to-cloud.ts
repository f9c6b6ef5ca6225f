import type { Cloud, CloudDisk, CloudVm } from '../../cloud/cloud.ts';
import { GOLDSNAP_TAGS } from '../../cloud/cloud.ts';
import type { Progress } from '../../dataplane/backup-disk.ts';
import { restoreDisk } from '../../dataplane/restore-disk.ts';
import { throttleWriter } from '../../dataplane/throttle.ts';
import { ChunkCodec } from '../../dataplane/chunk-codec.ts';
import type { RecoveryPoint } from '../../repository/recovery-point.ts';
import type { Repository } from '../../repository/repository.ts';
import { RepositorySession } from '../../repository/sessions.ts';

export interface CloudRestoreRequest {
  /** Unique per restore (not per attempt): tags what it makes, so a retry can tell its own leftovers. */
  restoreId: string;
  point: RecoveryPoint;
  pointId: string;
  region: string;
  resourceGroup: string;
  /** Name for the new VM, or prefix for the new disks. */
  name: string;
  /** Only these disks (by name); default all. */
  disks?: string[];
  /** Also create a VM from the restored disks. */
  createVm: boolean;
  /** The network interface the new VM gets (Azure requires one)… */
  networkInterfaceId?: string;
  /** …or the subnet in which a new one (<name>-nic) is made for it. */
  subnetId?: string;
  /** Size of the new VM (default: the source VM's, as recorded in the recovery point). */
  vmSize?: string;
  /** Subscription to restore into (default: the cloud's first). */
  subscriptionId?: string;
  /** Write limit in bytes per second (0 or absent: none). */
  bandwidth?: number;
  onProgress?: (p: Progress & { disk: string }) => void;
}

export interface CloudRestoreResult {
  disks: CloudDisk[];
  vm?: CloudVm;
}

/**
 * Restores a recovery point into the cloud: one new disk per restored disk (uploaded chunk by
 * chunk; zero chunks are skipped since a new disk reads as zeros), then optionally a new VM from
 * them, in any region. A failure deletes the disks it made.
 */
export async function restoreToCloud(
  repo: Repository,
  cloud: Cloud,
  req: CloudRestoreRequest,
): Promise<CloudRestoreResult> {
  const wanted = req.disks ? req.point.disks.filter((d) => req.disks!.includes(d.name)) : req.point.disks;
  if (wanted.length === 0)
    throw new Error(`recovery point ${req.pointId.slice(0, 8)} has none of the disks ${req.disks?.join(', ')}`);
  const tags = { ...GOLDSNAP_TAGS, goldsnapRestoredFrom: req.pointId, goldsnapRestore: req.restoreId };
  // A zone means something only in its own region: elsewhere the restore is regional.
  const sameRegion = !req.point.machine?.region || req.point.machine.region === req.region;

  // Never touch what is not this restore's: an existing disk or VM of the same name stops it. What
  // an earlier, interrupted attempt of this same restore left is cleared (disks) or kept (the VM,
  // made last, means the attempt had finished).
  if (req.createVm) {
    const vm = await cloud.findResource('vm', req.resourceGroup, req.name, req.subscriptionId);
    if (vm && vm.tags.goldsnapRestore !== req.restoreId)
      throw new Error(
        `a VM named ${req.name} already exists in resource group ${req.resourceGroup}: choose another name`,
      );
    if (vm) {
      const existing = await cloud.getVm(vm.id);
      return { disks: existing.disks, vm: existing };
    }
  }
  for (const record of wanted) {
    const name = `${req.name}-${record.name}`;
    const disk = await cloud.findResource('disk', req.resourceGroup, name, req.subscriptionId);
    if (disk && disk.tags.goldsnapRestore !== req.restoreId)
      throw new Error(
        `a disk named ${name} already exists in resource group ${req.resourceGroup}: choose another name`,
      );
    if (disk) await cloud.deleteDisk(disk.id);
  }

  // The target group (by default <name>-restore) is made if missing; one that exists is left as it is.
  await cloud.ensureResourceGroup?.(
    req.resourceGroup,
    req.region,
    { ...GOLDSNAP_TAGS, goldsnapRestore: req.restoreId },
    req.subscriptionId,
  );
  const inSubscription = req.subscriptionId ? { subscriptionId: req.subscriptionId } : {};
  const session = await RepositorySession.start(repo, `restore ${req.pointId.slice(0, 8)}`);
  const codec = new ChunkCodec(repo.key);
  const made: CloudDisk[] = [];
  try {
    const index = await repo.loadIndex();
    for (const record of wanted) {
      const fixedIndex = await repo.loadFixedIndex(record.fixedIndex);
      const { tags: sourceTags, zone, ...profile } = record.profile ?? {};
      const { disk, writer: opened } = await cloud.createDiskForRestore({
        ...inSubscription,
        name: `${req.name}-${record.name}`,
        region: req.region,
        resourceGroup: req.resourceGroup,
        sizeBytes: record.sizeBytes,
        tags: { ...sourceTags, ...tags },
        profile: { ...profile, ...(zone && sameRegion ? { zone } : {}) },
      });
      const writer = req.bandwidth ? throttleWriter(opened, req.bandwidth) : opened;
      try {
        await restoreDisk({
          repo,
          index,
          disk: fixedIndex,
          writer,
          codec,
          onProgress: (p) => req.onProgress?.({ ...p, disk: record.name }),
        });
        await writer.commit();
      } catch (err) {
        await writer.abort();
        throw err;
      }
      made.push({
        ...disk,
        role: record.source?.role === 'os' ? 'os' : 'data',
        ...(typeof record.source?.lun === 'number' ? { lun: record.source.lun } : {}),
      });
    }
    if (!req.createVm) return { disks: made };
    const osDisk = made.find((d) => d.role === 'os');
    if (!osDisk)
      throw new Error(
        `recovery point ${req.pointId.slice(0, 8)} has no OS disk among the restored disks: restore the disks only`,
      );
    const machine = req.point.machine;
    const size = req.vmSize ?? machine?.size;
    const securityType = machine?.securityType ?? wanted.find((d) => d.source?.role === 'os')?.profile?.securityType;
    let madeNic: string | undefined;
    if (req.subnetId) {
      if (!cloud.createNetworkInterface)
        throw new Error(`the ${cloud.kind} cloud cannot create network interfaces: give an existing one`);
      madeNic = await cloud.createNetworkInterface({
        ...inSubscription,
        name: `${req.name}-nic`,
        resourceGroup: req.resourceGroup,
        region: req.region,
        subnetId: req.subnetId,
        tags,
      });
    }
    const nic = madeNic ?? req.networkInterfaceId;
    try {
      const vm = await cloud.createVm({
        ...inSubscription,
        name: req.name,
        region: req.region,
        resourceGroup: req.resourceGroup,
        osDisk,
        dataDisks: made.filter((d) => d !== osDisk),
        tags: { ...machine?.tags, ...tags },
        ...(nic ? { networkInterfaceId: nic } : {}),
        ...(size ? { size } : {}),
        ...(machine?.zone && sameRegion ? { zone: machine.zone } : {}),
        ...(securityType ? { securityType } : {}),
      });
      return { disks: made, vm };
    } catch (err) {
      if (madeNic) await cloud.deleteNetworkInterface?.(madeNic).catch(() => undefined);
      throw err;
    }
  } catch (err) {
    // Nothing half-restored stays behind: the disks this restore made go with it.
    for (const disk of made) await cloud.deleteDisk(disk.id).catch(() => undefined);
    throw err;
  } finally {
    await session.end();
  }
}
