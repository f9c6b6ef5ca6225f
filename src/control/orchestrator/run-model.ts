import type { Consistency } from '../../cloud/cloud.ts';
import type { DiskBackupStats, DiskProfile, MachineProfile } from '../../repository/recovery-point.ts';

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
export const RunSteps = [
  'snapshot',
  'transfer',
  'commit',
  'promote',
  'retention',
  'succeeded',
  'cleanup',
  'failed',
] as const;
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
  /** SKU, generation, security type … as at the run's start: recorded in the recovery point. */
  profile?: DiskProfile;
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
  /** When Azure first refused this disk's snapshot for a limit that clears with time (snapshot-limit-wait.ts). */
  snapshotLimitSince?: string;
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
  /** What the policy asks for (default crash: a restore point with no guest scripts). */
  wantConsistency?: 'application' | 'crash';
  /** The VM as at the run's start (size, zone, security type, tags): recorded in the recovery point. */
  machine?: MachineProfile;
  /** Guest scripts around an application-consistent point (from the policy). */
  scripts?: { pre?: string; post?: string; timeoutSeconds: number };
  /** What the run got, set once its snapshots are taken (vm-point.ts). */
  consistency?: Consistency;
  /** The VM point (restore point) whose disk points are this run's snapshots. */
  vmPointId?: string;
  /** What went less well than asked without failing the run (a fall-back to per-disk snapshots, a disk read in full, a cross-region read). */
  warnings?: string[];
  /** Transfers of this run read by a proxy outside the disk's region, and their bytes. */
  crossRegion?: { transfers: number; bytes: number };
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
}
