/**
 * A recovery point: the disks of one machine (or one image) at one moment. Each disk refers to a
 * fixed index object; the recovery point itself is a small sealed JSON object in `snapshots/`.
 */
export interface DiskRecord {
  /** Name of the disk within the recovery point, e.g. `osdisk`, `data0`, or an image's name. */
  name: string;
  sizeBytes: number;
  chunkSize: number;
  /** Id of the fixed-index object (`fidx/<id>`). */
  fixedIndex: string;
  stats: DiskBackupStats;
  /** Free-form facts about the disk's origin (cloud disk id, snapshot id, LUN …). */
  source?: Record<string, string | number>;
  /** Why the disk was read in full although an earlier point had it (e.g. the cloud refused the diff). */
  fullReadReason?: string;
  /** What a restore needs to bring the disk back as it was (absent in points written before it). */
  profile?: DiskProfile;
}

/** How a disk was made: a restore that ignores this brings back a disk a VM may not boot from. */
export interface DiskProfile {
  /** e.g. Premium_LRS, StandardSSD_ZRS, UltraSSD_LRS. */
  sku?: string;
  osType?: string;
  /** V1 or V2 (generation 2: UEFI boot). */
  hyperVGeneration?: string;
  /** e.g. TrustedLaunch, ConfidentialVM_VMGuestStateOnlyEncryptedWithPlatformKey. */
  securityType?: string;
  zone?: string;
  tags?: Record<string, string>;
}

/** The machine the disks belonged to, as it was at backup time. */
export interface MachineProfile {
  name?: string;
  region?: string;
  resourceGroup?: string;
  /** e.g. Standard_D2s_v5. */
  size?: string;
  zone?: string;
  securityType?: string;
  tags?: Record<string, string>;
}

export interface DiskBackupStats {
  /** Bytes read from the source disk. */
  readBytes: number;
  /** Chunk positions whose content was read (the rest came from the parent). */
  readChunks: number;
  zeroChunks: number;
  /** Chunks that were not in the repository yet. */
  newChunks: number;
  /** Bytes those new chunks take in the repository (compressed, encrypted). */
  newStoredBytes: number;
}

export interface RecoveryPoint {
  version: 1;
  time: string;
  /** What was backed up; retention groups recovery points by this. */
  source: string;
  hostname: string;
  tags: string[];
  /**
   * How much of one instant the disks are: `application` or `crash` (one VM restore point),
   * `per-disk` (snapshots taken one after another). Absent in points written before it: per-disk.
   */
  consistency?: 'application' | 'crash' | 'per-disk';
  /** The VM as it was (size, zone, security type, tags): what a faithful restore recreates. */
  machine?: MachineProfile;
  parent?: string;
  disks: DiskRecord[];
}

export function validateRecoveryPoint(raw: unknown, id: string): RecoveryPoint {
  const p = raw as { version?: unknown; time?: unknown; source?: unknown; disks?: unknown } | null;
  const ok =
    p?.version === 1 &&
    typeof p.time === 'string' &&
    typeof p.source === 'string' &&
    Array.isArray(p.disks) &&
    (p.disks as Array<{ name?: unknown; fixedIndex?: unknown; sizeBytes?: unknown } | null>).every(
      (d) => typeof d?.name === 'string' && typeof d.fixedIndex === 'string' && Number.isSafeInteger(d.sizeBytes),
    );
  if (!ok) throw new Error(`recovery point ${id} is malformed`);
  return raw as RecoveryPoint;
}
