import { packEntriesToIndex, type IndexFile } from './chunk-index.ts';
import { mapLimit } from './concurrency.ts';
import { DATA_PREFIX, ObjectType, idOfName, objectName } from './format.ts';
import { readPackHeader } from './pack-reader.ts';
import { clearOldPlans } from './prune.ts';
import type { Repository } from './repository.ts';
import { DEFAULT_STALE_AFTER_MS } from './sessions.ts';
import { errorMessage } from '../util/errors.ts';

export interface RepairIndexReport {
  /** Packs whose header was read and indexed. */
  packs: number;
  chunks: number;
  /** Packs whose header cannot be read: their chunks are lost to the index. */
  damagedPacks: { pack: string; error: string }[];
  /** Index files the new one replaces (all there were). */
  replacedIndexFiles: number;
  /** Id of the index file written. */
  indexFile?: string;
}

/**
 * Rebuilds the index from the packs alone: every pack ends with a sealed header listing its
 * chunks (docs/repository-format.md), so one new index file naming every readable pack replaces
 * all the index files there were, damaged ones included. It supersedes exactly the files it
 * listed: an index file a backup writes meanwhile stays in force beside it. It refuses to run
 * beside a live prune, which deletes packs and index files.
 */
export async function repairIndex(
  repo: Repository,
  opts: { log?: (line: string) => void; onProgress?: (done: number, total: number) => void } = {},
): Promise<RepairIndexReport> {
  const log = opts.log ?? (() => {});
  await clearOldPlans(repo, DEFAULT_STALE_AFTER_MS);
  const oldIndexFiles = (await repo.listIds(ObjectType.index)).map((o) => o.id);
  const stored: { id: string; size: number }[] = [];
  for await (const o of repo.backend.list(DATA_PREFIX)) stored.push({ id: idOfName(o.name), size: o.size });

  const report: RepairIndexReport = { packs: 0, chunks: 0, damagedPacks: [], replacedIndexFiles: oldIndexFiles.length };
  const packs: IndexFile['packs'] = [];
  let done = 0;
  await mapLimit(stored, 8, async ({ id, size }) => {
    try {
      const chunks = packEntriesToIndex(await readPackHeader(repo, id, size));
      packs.push({ id, size, chunks });
      report.chunks += chunks.length;
    } catch (err) {
      report.damagedPacks.push({ pack: id, error: errorMessage(err) });
      log(`pack ${id}: ${errorMessage(err)}; its chunks cannot be indexed`);
    } finally {
      opts.onProgress?.(++done, stored.length);
    }
  });
  report.packs = packs.length;
  report.indexFile = await repo.writeIndexFile({ packs, supersedes: oldIndexFiles });
  // The new file supersedes the old ones: deleting them is tidiness, not correctness.
  await mapLimit(oldIndexFiles, 8, (id) => repo.backend.delete(objectName(ObjectType.index, id)));
  return report;
}
