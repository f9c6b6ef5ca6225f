/**
 * Azure's incremental snapshot limits, as a refusal of a new snapshot: 7 per disk per 5 minutes
 * and 3 pending background copies (Ultra / Premium SSD v2) clear with time; 500 per disk does
 * not (azure-docs includes/virtual-machines-disks-incremental-snapshots-restrictions.md,
 * learn.microsoft.com/azure/virtual-machines/disks-instant-access-snapshots). Azure refuses them
 * all with 409 OperationNotAllowed; only its message tells which.
 */
export type SnapshotLimit = 'per-window' | 'pending-copies' | 'per-disk';

export class SnapshotLimitError extends Error {
  readonly limit: SnapshotLimit;
  readonly diskName: string;
  /** What Azure asked to wait (Retry-After), if it said. */
  readonly retryAfterMs: number | undefined;

  constructor(limit: SnapshotLimit, diskName: string, azureMessage: string, retryAfterMs?: number) {
    super(
      limit === 'per-disk'
        ? `disk ${diskName} has reached Azure's limit of 500 incremental snapshots per disk, which waiting does not clear: delete incremental snapshots of ${diskName} that are not Goldsnap's (Goldsnap keeps only its golden snapshot per disk, tagged goldsnap=true) or that you no longer need, then run again. Azure said: ${azureMessage}`
        : limit === 'per-window'
          ? `disk ${diskName} has reached Azure's limit of 7 incremental snapshots per disk per 5 minutes. Azure said: ${azureMessage}`
          : `disk ${diskName} has reached Azure's limit of 3 snapshots per disk whose background copy is not complete. Azure said: ${azureMessage}`,
    );
    this.name = 'SnapshotLimitError';
    this.limit = limit;
    this.diskName = diskName;
    this.retryAfterMs = retryAfterMs;
  }

  /** Whether waiting can clear it. */
  get transient(): boolean {
    return this.limit !== 'per-disk';
  }
}

/** The limit a snapshot creation was refused for, or undefined when it is another error. */
export function snapshotLimitOf(err: unknown, diskName: string): SnapshotLimitError | undefined {
  const e = err as {
    statusCode?: number;
    code?: string;
    message?: string;
    response?: { headers?: { get(name: string): string | undefined } };
  };
  if (e?.statusCode !== 409 || e.code !== 'OperationNotAllowed') return undefined;
  const message = String(e.message ?? '').split('\n')[0]!;
  const seconds = Number(e.response?.headers?.get('retry-after'));
  const retryAfterMs = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined;
  if (/background copy|completionPercent/i.test(message))
    return new SnapshotLimitError('pending-copies', diskName, message, retryAfterMs);
  if (/incremental snapshot/i.test(message) && /minute|try again later/i.test(message))
    return new SnapshotLimitError('per-window', diskName, message, retryAfterMs);
  if (/incremental snapshot/i.test(message)) return new SnapshotLimitError('per-disk', diskName, message, retryAfterMs);
  return undefined;
}
