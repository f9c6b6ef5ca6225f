import { createHash } from 'node:crypto';
import { mapLimit } from './concurrency.ts';
import { ChunkIndex } from './chunk-index.ts';
import { DATA_PREFIX, FORMAT_VERSION, formatBytes, idOfName, packObjectName } from './format.ts';
import { findLeftovers } from './prune.ts';
import { DEFAULT_STALE_AFTER_MS } from './sessions.ts';
import { readPackHeader } from './pack-reader.ts';
import type { Repository } from './repository.ts';
import { errorMessage } from '../util/errors.ts';

export interface CheckReport {
  /** Problems that lose or corrupt data; each names the object. */
  errors: string[];
  /** Things that are harmless but worth knowing (leftovers of interrupted backups). */
  warnings: string[];
  /** What to run to repair what was found. */
  advice: string[];
  packs: number;
  chunks: number;
  recoveryPoints: number;
  bytesRead: number;
}

/**
 * Decrypts, decompresses and (with verifyId) re-hashes one sealed chunk; the data plane's chunk
 * codec is one, so that --read-data uses every core. Declared here so the repository needs no data plane.
 */
export interface ChunkOpener {
  open(
    id: Buffer,
    sealed: Buffer,
    compression: number,
    rawLength: number,
    where: string,
    verifyId?: boolean,
  ): Promise<Buffer>;
}

export interface CheckOptions {
  /** Also download every pack, decrypt every chunk and re-hash it against its id. */
  readData?: boolean;
  /** Needed for readData. */
  codec?: ChunkOpener;
  /** With readData, read only the packs this picks (a sample per scheduled check); default: all. */
  readPack?: (pack: string) => boolean;
  onProgress?: (done: number, total: number, what: string) => void;
}

/**
 * Verifies the repository: every index file opens, every indexed pack exists with the size and
 * header the index says, every recovery point opens and every chunk it needs is indexed. With
 * readData, every chunk is also decrypted and re-hashed, and every pack re-hashed against its name.
 */
export async function checkRepository(repo: Repository, opts: CheckOptions = {}): Promise<CheckReport> {
  const report: CheckReport = {
    errors: [],
    warnings: [],
    advice: [],
    packs: 0,
    chunks: 0,
    recoveryPoints: 0,
    bytesRead: 0,
  };
  let indexNeedsRepair = false;
  for (const d of repo.damagedKeySlots) {
    report.errors.push(
      `key slot ${d.id} is damaged (${d.why}): its passphrase no longer opens the repository; remove it with \`goldsnap repo key remove ${d.id}\` and add a new one with \`goldsnap repo key add\``,
    );
  }
  if (!repo.config.mac) {
    report.warnings.push(
      `the config is not authenticated (repository format ${repo.config.version}): run \`goldsnap repo migrate\` to upgrade to format ${FORMAT_VERSION} (older goldsnap cannot open it afterwards)`,
    );
  }
  const leftovers = await findLeftovers(repo, 0, DEFAULT_STALE_AFTER_MS);
  if (leftovers.temporary.length > 0) {
    const bytes = leftovers.temporary.reduce((sum, t) => sum + t.size, 0);
    report.warnings.push(
      `${leftovers.temporary.length} temp files (${formatBytes(bytes)}) of interrupted writes; \`goldsnap repo prune\` removes them once older than its grace period`,
    );
  }
  if (leftovers.sessions.length > 0) {
    report.warnings.push(
      `${leftovers.sessions.length} markers of backups or restores that died; \`goldsnap repo prune\` removes them`,
    );
  }

  const stored = new Map<string, number>();
  for await (const o of repo.backend.list(DATA_PREFIX)) stored.set(idOfName(o.name), o.size);

  const { files, damaged } = await repo.readIndexFilesReporting();
  const superseded = new Set(files.flatMap((f) => f.file.supersedes ?? []));
  for (const d of damaged) {
    if (superseded.has(d.id)) continue;
    report.errors.push(`index file ${d.id} cannot be read: ${d.error.message}`);
    indexNeedsRepair = true;
  }
  const index = new ChunkIndex();
  for (const { id, file } of files) if (!superseded.has(id)) index.addIndexFile(file);
  report.chunks = index.size;
  report.packs = index.packs.size;

  // What the recovery points need, to tell lost data from harmless leftovers.
  const used = new Set<string>();
  for (const { id, point } of await listPointsReporting(repo, report)) {
    report.recoveryPoints++;
    for (const disk of point.disks) {
      try {
        const fidx = await repo.loadFixedIndex(disk.fixedIndex);
        let missing = 0;
        for (const chunk of fidx.storedIds()) {
          used.add(chunk);
          if (!index.has(chunk)) missing++;
        }
        if (missing > 0) {
          report.errors.push(
            `recovery point ${id.slice(0, 8)} disk ${disk.name}: ${missing} chunks are in no index; it cannot be restored whole (\`restore-image --salvage\` restores the rest)`,
          );
          indexNeedsRepair = true;
        }
      } catch (err) {
        report.errors.push(`recovery point ${id.slice(0, 8)} disk ${disk.name}: ${errorMessage(err)}`);
      }
    }
  }

  for (const pack of stored.keys()) {
    if (!index.packs.has(pack))
      report.warnings.push(
        `pack ${pack} is in no index (left by an interrupted backup or prune); \`goldsnap repo prune\` removes it`,
      );
  }

  // Expected content of each pack according to the index.
  const expected = new Map<string, Map<string, { offset: number; length: number }>>();
  for (const [id, loc] of index.entries()) {
    let m = expected.get(loc.pack);
    if (!m) expected.set(loc.pack, (m = new Map()));
    m.set(id, { offset: loc.offset, length: loc.length });
  }

  const packs = [...index.packs];
  let done = 0;
  await mapLimit(packs, 4, async ([pack, size]) => {
    const what = `pack ${pack}`;
    try {
      const actual = stored.get(pack);
      if (actual === undefined) {
        const needed = [...(expected.get(pack)?.keys() ?? [])].some((c) => used.has(c));
        // A prune that stopped between deleting unused packs and writing its new index leaves this.
        if (!needed)
          report.warnings.push(
            `${what} is named by the index but gone, and no recovery point needs it; \`goldsnap repo prune\` drops it from the index`,
          );
        else
          report.errors.push(
            `${what} is named by the index but missing from the repository, and recovery points need its chunks`,
          );
        return;
      }
      if (actual !== size) {
        report.errors.push(`${what} is ${actual} bytes but the index says ${size}: it is damaged`);
        return;
      }
      const entries = await readPackHeader(repo, pack, size);
      const byId = new Map(entries.map((e) => [e.id.toString('hex'), e]));
      for (const [id, loc] of expected.get(pack) ?? []) {
        const e = byId.get(id);
        if (!e || e.offset !== loc.offset || e.length !== loc.length) {
          report.errors.push(`${what}: its header does not list chunk ${id} where the index says it is`);
          indexNeedsRepair = true;
        }
      }
      if (opts.readData && (opts.readPack?.(pack) ?? true))
        await readPackData(repo, opts.codec!, pack, size, entries, report);
    } catch (err) {
      report.errors.push(`${what}: ${errorMessage(err)}`);
    } finally {
      opts.onProgress?.(++done, packs.length, 'packs');
    }
  });
  if (indexNeedsRepair) {
    report.advice.push(
      'run `goldsnap repo repair index` to rebuild the index from the headers of the packs there are; then run check again',
    );
  }
  return report;
}

async function readPackData(
  repo: Repository,
  codec: ChunkOpener,
  pack: string,
  size: number,
  entries: { id: Buffer; offset: number; length: number; rawLength: number; compression: number }[],
  report: CheckReport,
): Promise<void> {
  const bytes = await repo.readPack(pack, 0, size);
  report.bytesRead += bytes.length;
  if (createHash('sha256').update(bytes).digest('hex') !== pack) {
    report.errors.push(`pack ${pack}: its content does not hash to its name: it is damaged (${packObjectName(pack)})`);
  }
  await Promise.all(
    entries.map(async (e) => {
      try {
        await codec.open(
          e.id,
          bytes.subarray(e.offset, e.offset + e.length),
          e.compression,
          e.rawLength,
          `pack ${pack}`,
          true,
        );
      } catch (err) {
        report.errors.push(errorMessage(err));
      }
    }),
  );
}

async function listPointsReporting(repo: Repository, report: CheckReport) {
  const out = [];
  for (const { id } of await repo.listIds('snapshots')) {
    try {
      out.push({ id, point: await repo.loadRecoveryPoint(id) });
    } catch (err) {
      report.errors.push(`recovery point ${id.slice(0, 8)}: ${errorMessage(err)}`);
    }
  }
  return out;
}
