import type { CloudSnapshot } from '../../cloud/cloud.ts';
import type { DiskBackupStats } from '../../repository/recovery-point.ts';
import type { RestoreJobPayload } from '../jobs.ts';
import type { CloudRestoreResult } from '../restore/restore-to-cloud.ts';

/**
 * What passes between the control plane and a data proxy (over the server's /internal/proxy API).
 * The queue itself lives in PostgreSQL; the proxy asks the server for work so that it needs no
 * database credentials, only a proxy token, the repository and the cloud.
 */
export type ProxyWork =
  | {
      jobId: number;
      kind: 'transfer';
      runId: string;
      diskName: string;
      snapshot: CloudSnapshot;
      base?: CloudSnapshot;
      parentFixedIndex?: string;
    }
  | { jobId: number; kind: 'restore'; restore: RestoreJobPayload };

export interface TransferJobResult {
  fixedIndex: string;
  stats: DiskBackupStats;
  incremental: boolean;
  /** Where the proxy that read the disk runs, and where the disk is: read across regions if they differ. */
  proxyRegion?: string;
  diskRegion?: string;
  /** Why the disk was read in full although it had a golden snapshot. */
  fullReadReason?: string;
}

export type ProxyJobResult = TransferJobResult | CloudRestoreResult;

export interface ProxyProgress {
  doneBytes: number;
  totalBytes: number;
  /** For restores: the disk being written. */
  disk?: string;
}

/** How long a claimed job stays the proxy's without a heartbeat: a killed proxy's work is taken up after it. */
export const PROXY_LEASE_MS = Number(process.env.GOLDSNAP_PROXY_LEASE_MS ?? 15_000);

/**
 * Long polls (POST /internal/proxy/claim with `waitMs`): the server holds a claim at most this
 * long (the proxy asks for less when its idle time runs out sooner), answering as soon as a job of
 * the region is queued; and while it holds one, it looks at the queue every PROXY_CLAIM_RECHECK_MS
 * for what no notification announces (a failed job's retry coming due, a dead proxy's lease
 * running out).
 */
export const PROXY_CLAIM_WAIT_MS = Number(process.env.GOLDSNAP_PROXY_CLAIM_WAIT_MS ?? 20_000);
export const PROXY_CLAIM_RECHECK_MS = Number(process.env.GOLDSNAP_PROXY_CLAIM_RECHECK_MS ?? 5_000);

/**
 * Jobs a proxy runs at once unless told otherwise (`goldsnap proxy --jobs`, `goldsnap server
 * --proxy-jobs`). Two disks at once keep the cores busy while one waits on reads or uploads; more
 * than that mostly adds memory (each transfer has its own pack buffers). docs/control-plane.md.
 */
export const DEFAULT_PROXY_JOBS = 2;
