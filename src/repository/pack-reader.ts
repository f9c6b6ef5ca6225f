import { decodePackHeader, HeaderBeyondTail, type PackEntry } from './pack.ts';
import type { Repository } from './repository.ts';

/** Most headers fit in this much; a larger one costs a second read. */
const TAIL_GUESS = 64 * 1024;

/** Reads and authenticates the header at the end of a pack. */
export async function readPackHeader(repo: Repository, packId: string, packSize: number): Promise<PackEntry[]> {
  const tryTail = async (n: number) => {
    const length = Math.min(n, packSize);
    return decodePackHeader(repo.key.dataKey, await repo.readPack(packId, packSize - length, length), packId, packSize);
  };
  try {
    return await tryTail(TAIL_GUESS);
  } catch (err) {
    if (err instanceof HeaderBeyondTail && err.needed <= packSize) return tryTail(err.needed);
    if (err instanceof HeaderBeyondTail)
      throw new Error(`pack ${packId} claims a header longer than the pack: it is damaged`);
    throw err;
  }
}
