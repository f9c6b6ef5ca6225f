import type { JobQueue } from './queue/job-queue.ts';
import type { CloudRestoreRequest } from './restore/restore-to-cloud.ts';

/**
 * Every job of the control plane: its queues, and each kind with its payload. The queue is typed
 * by this map (as graphile-worker types its tasks), so a job's payload is known from its kind.
 */

/** Policy fires, claimed by the orchestrator of any server. */
export const ORCHESTRATOR_QUEUE = 'orchestrator';
const TRANSFER_QUEUE_PREFIX = 'transfer:';

/** Transfers and restores of one region, claimed by that region's data proxies. */
export function transferQueue(region: string): string {
  return `${TRANSFER_QUEUE_PREFIX}${region}`;
}

/** The region a `transfer:<region>` queue serves, or undefined for another queue. */
export function regionOfQueue(queue: string): string | undefined {
  return queue.startsWith(TRANSFER_QUEUE_PREFIX) ? queue.slice(TRANSFER_QUEUE_PREFIX.length) : undefined;
}

/** Depth per region of the transfer queues, as the proxy launcher and the API want it. */
export async function transferQueueDepths(queue: ControlQueue) {
  return queue.depth(TRANSFER_QUEUE_PREFIX);
}

export interface PolicyFirePayload {
  policyId: string;
  /** The cron occurrence (ISO, UTC) this fire is for. */
  scheduledFor: string;
}

export interface TransferJobPayload {
  runId: string;
  diskId: string;
}

/** A restore as queued: the request without the recovery point itself, which the proxy reads from the repository. */
export type RestoreJobPayload = Omit<CloudRestoreRequest, 'point' | 'onProgress'>;

export interface JobPayloads {
  'policy-fire': PolicyFirePayload;
  transfer: TransferJobPayload;
  restore: RestoreJobPayload;
}

export type ControlQueue = JobQueue<JobPayloads>;
