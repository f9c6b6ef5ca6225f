import type { DiskBackupStats } from '../../repository/recovery-point.ts';

/**
 * A backup run of one VM moves through these steps, each idempotent so that a run interrupted at
 * any instant (server killed) resumes where it was:
 *
 *   snapshot → transfer → commit → promote → retention → succeeded
 *        \__________\________→ cleanup → failed        (only before commit)
 *
 * The golden snapshot of a disk is replaced (promote) only after the recovery point made from the
 * new snapshot is committed; a run that fails before commit deletes its new snapshots (cleanup).
 */
export const RunSteps = ['snapshot', 'transfer', 'commit', 'promote', 'retention', 'succeeded', 'cleanup', 'failed'] as const;
export type RunStep = (typeof RunSteps)[number];

export function isFinished(step: RunStep): boolean {
  return step === 'succeeded' || step === 'failed';
}

export interface RunDisk {
  diskId: string;
  diskName: string;
  region: string;
  sizeBytes: number;
  role: 'os' | 'data';
  lun?: number;
  /** The snapshot this run made of the disk. */
  snapshotId?: string;
  /** The golden snapshot at the start of the run (base of the incremental). */
  baseSnapshotId?: string;
  /** Fixed index of the disk at the golden snapshot's recovery point. */
  parentFixedIndex?: string;
  /** Fixed index written by the transfer. */
  fixedIndex?: string;
  stats?: DiskBackupStats;
  incremental?: boolean;
  /** Why the disk was read in full although it had a golden snapshot (the cloud refused the diff). */
  fullReadReason?: string;
  bytesDone: number;
  bytesTotal: number;
  transferred: boolean;
  /** Why the transfer gave up (after its retries). */
  error?: string;
  /** The region the data proxy that read this disk runs in (cross-region.ts). */
  proxyRegion?: string;
}

export interface Run {
  id: string;
  vmId: string;
  vmName: string;
  policyId?: string;
  /** The policy occurrence that started the run (absent for runs started by hand). */
  scheduledFor?: string;
  step: RunStep;
  error?: string;
  disks: RunDisk[];
  recoveryPointId?: string;
  /** Set before the recovery point is written: a resumed commit looks for one it may have left. */
  commitStarted?: boolean;
  /** Things the operator should know that did not fail the run (a disk read in full, a cross-region read). */
  warnings?: string[];
  /** Transfers of this run read by a proxy outside the disk's region, and their bytes. */
  crossRegion?: { transfers: number; bytes: number };
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
}
