import { errorMessage } from '../util/errors.ts';
/** A byte range of a disk: `length` bytes from `offset`. */
export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * Reads a changed-ranges list: JSON `[{"offset": n, "length": n}, …]` (what cloud APIs' "changed
 * blocks" calls give, flattened). Ranges may be unsorted and overlap; they must lie in the disk.
 */
export function parseChangedRanges(text: string, diskSize: number, what: string): ByteRange[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${what} is not JSON (${errorMessage(err)}); expected [{"offset": 0, "length": 4096}, …]`);
  }
  if (!Array.isArray(raw)) throw new Error(`${what} must be a JSON array of {"offset", "length"} objects`);
  return raw.map((r: unknown, i) => {
    const { offset, length } = (r ?? {}) as { offset?: unknown; length?: unknown };
    if (
      typeof offset !== 'number' ||
      typeof length !== 'number' ||
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0
    ) {
      throw new Error(
        `${what}: range #${i} ${JSON.stringify(r)} needs non-negative integer "offset" and "length" in bytes`,
      );
    }
    if (offset + length > diskSize) {
      throw new Error(
        `${what}: range #${i} (${offset}+${length}) ends past the end of the disk (${diskSize} bytes); is this the right list for this image?`,
      );
    }
    return { offset, length };
  });
}

/** The chunk positions that any range touches, sorted and without repeats. */
export function chunkPositionsTouched(ranges: ByteRange[], chunkSize: number): number[] {
  const positions = new Set<number>();
  for (const { offset, length } of ranges) {
    if (length === 0) continue;
    const last = Math.floor((offset + length - 1) / chunkSize);
    for (let p = Math.floor(offset / chunkSize); p <= last; p++) positions.add(p);
  }
  return [...positions].sort((a, b) => a - b);
}
