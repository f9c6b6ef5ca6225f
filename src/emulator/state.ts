export type ResourceKind = 'disks' | 'snapshots' | 'virtualMachines';
export type Access = 'Read' | 'Write';

/** What disks and snapshots share: both are managed-disk resources over a content in the extent store. */
export interface ContentRec {
  id: string;
  name: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
  skuName: string;
  sizeBytes: number;
  contentId: string;
  uniqueId: string;
  timeCreated: string;
  /** Epoch ms when the create/update operation completes (provisioningState Succeeded). */
  readyAt: number;
  creationData: Record<string, unknown>;
  osType?: string;
  hyperVGeneration?: string;
  /** securityProfile.securityType (TrustedLaunch …) and availability zone (src/emulator/vm-rules.ts). */
  securityType?: string;
  zone?: string;
  access?: Access;
  /** Family for incremental diffs: the uniqueId of the original disk. */
  family: string;
  /** Bumped by a resize across 4 TiB: Azure computes no diff across it. */
  diffEpoch?: number;
  networkAccessPolicy?: 'AllowAll' | 'AllowPrivate' | 'DenyAll';
  /** `AzureActiveDirectory`: data requests need a bearer token besides the SAS. */
  dataAccessAuthMode?: 'None' | 'AzureActiveDirectory';
}

export interface DiskRec extends ContentRec {
  managedBy?: string;
  /** Upload disk that has not finished its upload (ReadyToUpload until the write SAS is revoked). */
  uploadPending: boolean;
  /** When incremental snapshots of this disk were taken (the last few minutes, for Azure's rate limit). */
  snapshotTimes?: number[];
}

export interface SnapshotRec extends ContentRec {
  incremental: boolean;
  /** Ultra / Premium SSD v2: when the background copy started and ends (epoch ms). */
  copyStartedAt?: number;
  copyDoneAt?: number;
}

export interface VmRec {
  id: string;
  name: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
  vmId: string;
  vmSize: string;
  osType: string;
  osDiskId: string;
  dataDisks: { lun: number; diskId: string }[];
  /** Network interface ids as given (the emulator has no Microsoft.Network to check them against). */
  nicIds?: string[];
  securityType?: string;
  zone?: string;
  timeCreated: string;
  readyAt: number;
}

export interface OperationRec {
  id: string;
  location: string;
  /** `disk` operations live under .../DiskOperations/, `vm` ones under .../operations/. */
  family: 'disk' | 'vm';
  startTime: string;
  doneAt: number;
  /** Body returned by the Location (monitor) URL and as properties.output once done. */
  output?: unknown;
  /** URL of the resource (PUT) for information. */
  resourceId?: string;
}

export interface GrantRec {
  id: string;
  resourceKey: string;
  kind: 'disks' | 'snapshots' | 'diskRestorePoints';
  access: Access;
  account: string;
  container: string;
  startsOn: string;
  expiresOn: string;
  /** Expired ahead of `expiresOn` by the control API (time passing, for tests). */
  expired?: boolean;
}

export interface EmulatorState {
  version: 1;
  subscriptionId: string;
  /** Subscriptions hosted besides the first (src/emulator/subscriptions.ts). */
  moreSubscriptionIds?: string[];
  token: string;
  /** HMAC key for SAS signatures (hex). */
  sasKey: string;
  disks: Record<string, DiskRec>;
  snapshots: Record<string, SnapshotRec>;
  virtualMachines: Record<string, VmRec>;
  operations: Record<string, OperationRec>;
  grants: Record<string, GrantRec>;
  /** VM restore points (src/emulator/restore-points.ts); absent in state written before them. */
  restorePointCollections?: Record<string, RestorePointCollectionRec>;
  restorePoints?: Record<string, RestorePointRec>;
  diskRestorePoints?: Record<string, DiskRestorePointRec>;
  /** Resource groups clients created (src/emulator/resource-groups.ts). */
  resourceGroups?: Record<string, import('./resource-groups.ts').ResourceGroupRec>;
  /** Network interfaces clients created (src/emulator/network.ts). */
  networkInterfaces?: Record<string, import('./network.ts').NetworkInterfaceRec>;
}

export interface RestorePointCollectionRec {
  id: string;
  name: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
  /** The VM whose restore points the collection holds. */
  sourceVmId: string;
  collectionId: string;
}

export interface RestorePointRec {
  id: string;
  name: string;
  collectionKey: string;
  consistencyMode: string;
  timeCreated: string;
  readyAt: number;
  /** The VM as it was at the restore point (Azure's sourceMetadata). */
  sourceMetadata: Record<string, unknown>;
  /** Keys of its disk restore points, OS disk first. */
  diskKeys: string[];
}

/** A disk restore point: a copy of one disk at the restore point's instant, readable like a snapshot. */
export interface DiskRestorePointRec extends ContentRec {
  restorePointKey: string;
  sourceDiskId: string;
}

/** Lower-cased key of a resource id (ARM ids are case-insensitive). */
export function keyOf(id: string): string {
  return id.toLowerCase();
}
