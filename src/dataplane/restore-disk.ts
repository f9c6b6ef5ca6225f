import type { ChunkIndex, ChunkLocation } from '../repository/chunk-index.ts';
import { mapLimit } from '../repository/concurrency.ts';
import type { FixedIndex } from '../repository/fixed-index.ts';
import type { Repository } from '../repository/repository.ts';
import type { Progress } from './backup-disk.ts';
import type { DiskWriter } from './disk-io.ts';
import type { WorkerPool } from './worker-pool.ts';

export interface RestoreDiskOptions {
  repo: Repository;
  index: ChunkIndex;
  disk: FixedIndex;
  writer: DiskWriter;
  pool: WorkerPool;
  onProgress?: (p: Progress) => void;
}

/** A stretch of one pack read in one request: chunks close together, up to MAX_RUN_BYTES. */
interface PackRun {
  pack: string;
  offset: number;
  length: number;
  chunks: { id: string; location: ChunkLocation; positions: number[] }[];
}

const MAX_RUN_BYTES = 8 * 1024 * 1024;
/** Reading a gap this small is cheaper than another request. */
const MAX_GAP_BYTES = 256 * 1024;
const RUNS_IN_FLIGHT = 3;

/**
 * Restores one disk from its fixed index. Chunks are fetched pack by pack in ranged reads of
 * neighbouring chunks, decrypted and decompressed on the worker pool, and written to every
 * position that holds them. Every chunk is authenticated (AES-GCM), so a damaged pack stops the
 * restore with an error naming it instead of writing wrong bytes.
 */
export async function restoreDisk(opts: RestoreDiskOptions): Promise<void> {
  const { disk, writer, pool } = opts;
  const byId = new Map<string, number[]>();
  const zeroPositions: number[] = [];
  for (let p = 0; p < disk.count; p++) {
    if (disk.isZero(p)) { zeroPositions.push(p); continue; }
    const id = disk.idAt(p).toString('hex');
    const list = byId.get(id);
    if (list) list.push(p); else byId.set(id, [p]);
  }
  const runs = planRuns(byId, opts.index);
  let doneBytes = 0;
  const totalBytes = disk.sizeBytes;
  const report = (n: number) => { doneBytes += n; opts.onProgress?.({ doneBytes, totalBytes }); };

  await mapLimit(runs, RUNS_IN_FLIGHT, async run => {
    const bytes = await opts.repo.readPack(run.pack, run.offset, run.length);
    if (bytes.length !== run.length) throw new Error(`pack ${run.pack} is shorter than the index says: it is damaged; run \`goldsnap repo check\``);
    await Promise.all(run.chunks.map(async chunk => {
      const start = chunk.location.offset - run.offset;
      const sealed = bytes.subarray(start, start + chunk.location.length);
      const plain = await pool.open(Buffer.from(chunk.id, 'hex'), sealed, chunk.location.compression, chunk.location.rawLength, `pack ${run.pack}`);
      for (const p of chunk.positions) {
        if (plain.length !== disk.lengthAt(p)) {
          throw new Error(`chunk ${chunk.id} holds ${plain.length} bytes but position ${p} of the disk needs ${disk.lengthAt(p)}: the recovery point is inconsistent`);
        }
        await opts.writer.write(p * disk.chunkSize, plain);
        report(plain.length);
      }
    }));
  });

  const zeros = Buffer.alloc(disk.chunkSize);
  for (const p of zeroPositions) {
    if (!writer.zeroFilled) await writer.write(p * disk.chunkSize, zeros.subarray(0, disk.lengthAt(p)));
    report(disk.lengthAt(p));
  }
}

function planRuns(byId: Map<string, number[]>, index: ChunkIndex): PackRun[] {
  const perPack = new Map<string, PackRun['chunks']>();
  for (const [id, positions] of byId) {
    const location = index.get(id);
    if (!location) {
      throw new Error(`chunk ${id} of this recovery point is in no index: the repository lost data; run \`goldsnap repo check\``);
    }
    const list = perPack.get(location.pack);
    if (list) list.push({ id, location, positions }); else perPack.set(location.pack, [{ id, location, positions }]);
  }
  const runs: PackRun[] = [];
  for (const [pack, chunks] of perPack) {
    chunks.sort((a, b) => a.location.offset - b.location.offset);
    let run: PackRun | undefined;
    for (const c of chunks) {
      const end = c.location.offset + c.location.length;
      if (run && c.location.offset - (run.offset + run.length) <= MAX_GAP_BYTES && end - run.offset <= MAX_RUN_BYTES) {
        run.length = end - run.offset;
        run.chunks.push(c);
      } else {
        run = { pack, offset: c.location.offset, length: c.location.length, chunks: [c] };
        runs.push(run);
      }
    }
  }
  return runs;
}
