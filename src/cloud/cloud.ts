import type { ByteRange } from '../dataplane/byte-ranges.ts';
import type { DiskReader, DiskWriter } from '../dataplane/disk-io.ts';

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
}

export interface CloudDisk {
  id: string;
  name: string;
  region: string;
  sizeBytes: number;
  /** `os` or `data`; data disks have a LUN. */
  role: 'os' | 'data';
  lun?: number;
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
  createDiskForRestore(req: { name: string; region: string; resourceGroup: string; sizeBytes: number; tags: Record<string, string> }): Promise<{ disk: CloudDisk; writer: DiskWriter }>;
  /** Deletes a disk (a restore that failed removes the disks it made); absent is not an error. */
  deleteDisk(id: string): Promise<void>;
  /** A disk or VM by resource group and name, with its tags; undefined when there is none. */
  findResource(kind: 'disk' | 'vm', resourceGroup: string, name: string): Promise<{ id: string; tags: Record<string, string> } | undefined>;
  /** Revokes data access Goldsnap left open on its snapshots (after a crash); returns how many. */
  releaseLeftoverAccess?(): Promise<number>;
  /** Creates a VM from existing disks (restore to a new VM). */
  createVm(req: { name: string; region: string; resourceGroup: string; osDisk: CloudDisk; dataDisks: CloudDisk[]; tags: Record<string, string>; networkInterfaceId?: string }): Promise<CloudVm>;
}
