import type { ByteRange } from '../dataplane/byte-ranges.ts';
import type { DiskReader, DiskWriter } from '../dataplane/disk-io.ts';
import type { DiskProfile, MachineProfile } from '../repository/recovery-point.ts';

export type { DiskProfile, MachineProfile } from '../repository/recovery-point.ts';

/**
 * What the backup workflow needs from a cloud: a layer below the control plane and above the data
 * plane (test/code/layers.test.ts). Implementations: `azure` (official SDKs; also runs against the
 * emulator). Every snapshot Goldsnap creates carries
 * GOLDSNAP_TAGS so that leaked ones can always be found and removed.
 */
export const GOLDSNAP_TAG = 'goldsnap';
export const GOLDSNAP_TAGS = { [GOLDSNAP_TAG]: 'true' } as const;

export interface CloudVm {
  /** Cloud resource id (Azure: /subscriptions/…/virtualMachines/name). */
  id: string;
  name: string;
  region: string;
  resourceGroup: string;
  tags: Record<string, string>;
  disks: CloudDisk[];
  /** Size, zone, security type: recorded in the recovery point for a faithful restore. */
  profile?: MachineProfile;
}

export interface CloudDisk {
  id: string;
  name: string;
  region: string;
  sizeBytes: number;
  /** `os` or `data`; data disks have a LUN. */
  role: 'os' | 'data';
  lun?: number;
  /** SKU, OS type, generation, security type, zone, tags: recorded for a faithful restore. */
  profile?: DiskProfile;
}

export interface CloudSnapshot {
  id: string;
  name: string;
  diskId: string;
  region: string;
  sizeBytes: number;
  tags: Record<string, string>;
  createdAt: string;
}

export interface SnapshotRequest {
  disk: CloudDisk;
  /** Snapshot name, unique per run and disk (e.g. goldsnap-<run>-<disk>), so a retried create is idempotent. */
  name: string;
  tags: Record<string, string>;
}

/**
 * How much of one instant a recovery point is: `application` (a restore point with the guest's
 * applications quiesced), `crash` (a restore point: all disks at one instant, as after a power cut),
 * `per-disk` (each disk snapshotted on its own, seconds apart: not one instant of the VM).
 */
export type Consistency = 'application' | 'crash' | 'per-disk';

export interface VmPointRequest {
  vm: Pick<CloudVm, 'id' | 'name' | 'region' | 'resourceGroup' | 'disks'>;
  /** Restore point name, unique per run (goldsnap-<run id>), so a retried create is idempotent. */
  name: string;
  consistency: 'application' | 'crash';
  tags: Record<string, string>;
}

/** One instant of all the disks of a VM (Azure: a VM restore point). */
export interface VmPoint {
  id: string;
  /** What the cloud made: Azure may make a crash-consistent point when asked for an application-consistent one. */
  consistency: 'application' | 'crash';
  /** One per disk, readable and diffable like snapshots (diskId names the disk). */
  disks: CloudSnapshot[];
}

/** A VM point Goldsnap made (found by its collection's tags), with the run named in it. */
export interface GoldsnapVmPoint {
  id: string;
  runId?: string;
  diskPointIds: string[];
}

export interface RestoreDiskRequest {
  /** Subscription to create the disk in (default: the cloud's first). */
  subscriptionId?: string;
  name: string;
  region: string;
  resourceGroup: string;
  sizeBytes: number;
  tags: Record<string, string>;
  /** SKU, OS type, generation, security type, zone of the source disk (its tags are in `tags`). */
  profile?: DiskProfile;
}

export interface CreateVmRequest {
  /** Subscription to create the VM in (default: the cloud's first). */
  subscriptionId?: string;
  name: string;
  region: string;
  resourceGroup: string;
  osDisk: CloudDisk;
  dataDisks: CloudDisk[];
  tags: Record<string, string>;
  networkInterfaceId?: string;
  /** VM size (default: the cloud's own). */
  size?: string;
  zone?: string;
  securityType?: string;
}

/** What a script run in the guest (Azure: Run Command) came to. */
export interface ScriptResult {
  ok: boolean;
  /** Exit status when the script ended; absent when it timed out. */
  exitCode?: number;
  timedOut?: boolean;
  /** What it printed (stdout and stderr), for the run's warning. */
  output: string;
}

/** The cloud cannot take one instant of this VM (e.g. Azure: Ultra disks); use per-disk snapshots. */
export class VmPointUnsupportedError extends Error {}

export interface Cloud {
  readonly kind: string;
  listVms(): Promise<CloudVm[]>;
  getVm(id: string): Promise<CloudVm>;
  /** Creates an incremental snapshot (provisioned, not necessarily readable yet). Idempotent by name. */
  createSnapshot(req: SnapshotRequest): Promise<CloudSnapshot>;
  /** Waits until a snapshot's background copy is complete and it can be read. */
  waitForSnapshot(id: string): Promise<void>;
  getSnapshot(id: string): Promise<CloudSnapshot | undefined>;
  /** Snapshots carrying Goldsnap's tag (to find leaked ones). */
  listGoldsnapSnapshots(): Promise<CloudSnapshot[]>;
  deleteSnapshot(id: string): Promise<void>;
  /** Byte ranges of the snapshot that hold data (everything else reads as zeros). */
  allocatedRanges(snapshot: CloudSnapshot): Promise<ByteRange[]>;
  /** Byte ranges that differ between `base` (an earlier snapshot of the same disk) and `snapshot`. */
  changedRanges(base: CloudSnapshot, snapshot: CloudSnapshot): Promise<ByteRange[]>;
  /** Opens the snapshot for reading (Azure: begin/end get access around a SAS URL). */
  openSnapshot(snapshot: CloudSnapshot): Promise<DiskReader>;
  /** Creates an empty disk for upload and opens it for writing; commit() finishes the upload. */
  createDiskForRestore(req: RestoreDiskRequest): Promise<{ disk: CloudDisk; writer: DiskWriter }>;
  /** Deletes a disk (a restore that failed removes the disks it made); absent is not an error. */
  deleteDisk(id: string): Promise<void>;
  /** A disk or VM by resource group and name, with its tags; undefined when there is none. */
  findResource(
    kind: 'disk' | 'vm',
    resourceGroup: string,
    name: string,
    subscriptionId?: string,
  ): Promise<{ id: string; tags: Record<string, string> } | undefined>;
  /** Revokes data access Goldsnap left open on its snapshots (after a crash); returns how many. */
  releaseLeftoverAccess?(): Promise<number>;
  /**
   * Takes one instant of all the VM's disks; throws VmPointUnsupportedError when the VM cannot have
   * one. Clouds without the feature leave these out: Goldsnap then snapshots disk by disk.
   */
  createVmPoint?(req: VmPointRequest): Promise<VmPoint>;
  /** VM points Goldsnap made (to sweep leaked ones). */
  listGoldsnapVmPoints?(): Promise<GoldsnapVmPoint[]>;
  /** Deletes a VM point and its disk points; absent is not an error. */
  deleteVmPoint?(id: string): Promise<void>;
  /** Disks carrying Goldsnap's tag (restored ones), to remove those a failed restore left. */
  listGoldsnapDisks?(): Promise<Array<{ id: string; tags: Record<string, string>; attached: boolean }>>;
  /** Creates a network interface in a subnet for a restored VM; returns its id. */
  createNetworkInterface?(req: {
    name: string;
    resourceGroup: string;
    region: string;
    subnetId: string;
    tags: Record<string, string>;
    subscriptionId?: string;
  }): Promise<string>;
  deleteNetworkInterface?(id: string): Promise<void>;
  /** Creates a resource group unless it exists (restores go to a group of their own). */
  ensureResourceGroup?(
    name: string,
    region: string,
    tags: Record<string, string>,
    subscriptionId?: string,
  ): Promise<void>;
  /** Is this a subscription the cloud works on? (Absent: the cloud has one and names none.) */
  knowsSubscription?(subscriptionId: string): boolean;
  /** Is this a region of the cloud? (A restore to an unknown region is refused before it starts.) */
  knownRegion?(region: string): boolean;
  /** Runs a shell script in the VM's guest (pre/post scripts of application-consistent backups). */
  runScript?(vm: Pick<CloudVm, 'id'>, script: string, timeoutSeconds: number): Promise<ScriptResult>;
  /** Creates a VM from existing disks (restore to a new VM). */
  createVm(req: CreateVmRequest): Promise<CloudVm>;
}
