/**
 * Azure's documented limits that the emulator enforces (docs/emulator.md lists each with its
 * source). Tests may lower them to reach them with small disks;
 * the defaults are Azure's.
 */
export interface AzureLimits {
  /** Get Page Ranges returns at most this many ranges per response, then a NextMarker. */
  pageRangesPerResponse: number;
  /**
   * A Get Page Ranges request whose span holds more ranges than this times out server-side
   * (500 OperationTimedOut): Azure advises asking a fragmented blob in segments. Azure publishes
   * no figure; this one is the emulator's.
   */
  pageRangesTimeout: number;
  /** Snapshots of one incremental snapshot family that may have an active SAS at once. */
  sasPerFamily: number;
  /** Incremental snapshots per disk within `snapshotWindowMs`. */
  snapshotsPerWindow: number;
  snapshotWindowMs: number;
  /** Incremental snapshots a disk may have at all. */
  snapshotsPerDisk: number;
  /** A resize that crosses this size starts a new diff epoch: no diff across it. */
  resizeBoundaryBytes: number;
  /**
   * Ultra and Premium SSD v2 snapshots are readable only once a background copy reaches
   * completionPercent 100; how long it takes here (Azure: minutes to hours, by size).
   */
  backgroundCopyMs: number;
  /** Such snapshots still copying, per disk. */
  pendingCopiesPerDisk: number;
}

export const AZURE_LIMITS: AzureLimits = {
  pageRangesPerResponse: 10_000,
  pageRangesTimeout: 100_000,
  sasPerFamily: 5,
  snapshotsPerWindow: 7,
  snapshotWindowMs: 5 * 60_000,
  snapshotsPerDisk: 500,
  resizeBoundaryBytes: 4 * 1024 ** 4,
  backgroundCopyMs: 30_000,
  pendingCopiesPerDisk: 3,
};

/** Disk types whose snapshots need a background copy before use (disks-instant-access-snapshots). */
export const BACKGROUND_COPY_SKUS = ['UltraSSD_LRS', 'PremiumV2_LRS'];
