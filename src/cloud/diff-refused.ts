/**
 * The cloud will not compute the changes between two snapshots of a disk: Azure refuses a diff
 * across snapshot families (the disk was deleted and created again under its name) and across a
 * resize past 4 TiB. Not a failure of the backup: the disk is read in full instead, and the
 * recovery point says why.
 */
export class DiffRefusedError extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(`the cloud refused the diff between the golden snapshot and the new one: ${reason}`);
    this.name = 'DiffRefusedError';
    this.reason = reason;
  }
}
