import { createHash } from 'node:crypto';
import type { WorkerPool } from '../dataplane/worker-pool.ts';
import { mapLimit } from './concurrency.ts';
import { DATA_PREFIX, FORMAT_VERSION, idOfName, packObjectName } from './format.ts';
import { readPackHeader } from './pack-reader.ts';
import type { Repository } from './repository.ts';

export interface CheckReport {
  /** Problems that lose or corrupt data; each names the object. */
  errors: string[];
  /** Things that are harmless but worth knowing (leftovers of interrupted backups). */
  warnings: string[];
  packs: number;
  chunks: number;
  recoveryPoints: number;
  bytesRead: number;
}

export interface CheckOptions {
  /** Also download every pack, decrypt every chunk and re-hash it against its id. */
  readData?: boolean;
  /** Needed for readData. */
  pool?: WorkerPool;
  onProgress?: (done: number, total: number, what: string) => void;
}

/**
 * Verifies the repository: every index file opens, every indexed pack exists with the size and
 * header the index says, every recovery point opens and every chunk it needs is indexed. With
 * readData, every chunk is also decrypted and re-hashed, and every pack re-hashed against its name.
 */
export async function checkRepository(repo: Repository, opts: CheckOptions = {}): Promise<CheckReport> {
  const report: CheckReport = { errors: [], warnings: [], packs: 0, chunks: 0, recoveryPoints: 0, bytesRead: 0 };
  for (const d of repo.damagedKeySlots) {
    report.errors.push(`key slot ${d.id} is damaged (${d.why}): its passphrase no longer opens the repository; remove it with \`goldsnap repo key remove ${d.id}\` and add a new one with \`goldsnap repo key add\``);
  }
  if (!repo.config.mac) {
    report.warnings.push(`the config is not authenticated (repository format ${repo.config.version}): run \`goldsnap repo migrate\` to upgrade to format ${FORMAT_VERSION} (older goldsnap cannot open it afterwards)`);
  }
  const stored = new Map<string, number>();
  for await (const o of repo.backend.list(DATA_PREFIX)) stored.set(idOfName(o.name), o.size);

  let index;
  try {
    index = await repo.loadIndex();
  } catch (err) {
    report.errors.push(`the index cannot be read: ${(err as Error).message}`);
    return report;
  }
  report.chunks = index.size;
  report.packs = index.packs.size;
  for (const pack of stored.keys()) {
    if (!index.packs.has(pack)) report.warnings.push(`pack ${pack} is in no index (left by an interrupted backup or prune); \`goldsnap repo prune\` removes it`);
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
      if (actual === undefined) { report.errors.push(`${what} is named by the index but missing from the repository`); return; }
      if (actual !== size) { report.errors.push(`${what} is ${actual} bytes but the index says ${size}: it is damaged`); return; }
      const entries = await readPackHeader(repo, pack, size);
      const byId = new Map(entries.map(e => [e.id.toString('hex'), e]));
      for (const [id, loc] of expected.get(pack) ?? []) {
        const e = byId.get(id);
        if (!e || e.offset !== loc.offset || e.length !== loc.length) report.errors.push(`${what}: its header does not list chunk ${id} where the index says it is`);
      }
      if (opts.readData) await readPackData(repo, opts.pool!, pack, size, entries, report);
    } catch (err) {
      report.errors.push(`${what}: ${(err as Error).message}`);
    } finally {
      opts.onProgress?.(++done, packs.length, 'packs');
    }
  });

  for (const { id, point } of await listPointsReporting(repo, report)) {
    report.recoveryPoints++;
    for (const disk of point.disks) {
      try {
        const fidx = await repo.loadFixedIndex(disk.fixedIndex);
        let missing = 0;
        for (const chunk of fidx.storedIds()) if (!index.has(chunk)) missing++;
        if (missing > 0) report.errors.push(`recovery point ${id.slice(0, 8)} disk ${disk.name}: ${missing} chunks are in no index; it cannot be restored whole`);
      } catch (err) {
        report.errors.push(`recovery point ${id.slice(0, 8)} disk ${disk.name}: ${(err as Error).message}`);
      }
    }
  }
  return report;
}

async function readPackData(repo: Repository, pool: WorkerPool, pack: string, size: number, entries: { id: Buffer; offset: number; length: number; rawLength: number; compression: number }[], report: CheckReport): Promise<void> {
  const bytes = await repo.readPack(pack, 0, size);
  report.bytesRead += bytes.length;
  if (createHash('sha256').update(bytes).digest('hex') !== pack) {
    report.errors.push(`pack ${pack}: its content does not hash to its name: it is damaged (${packObjectName(pack)})`);
  }
  await Promise.all(entries.map(async e => {
    try {
      await pool.open(e.id, bytes.subarray(e.offset, e.offset + e.length), e.compression, e.rawLength, `pack ${pack}`, true);
    } catch (err) {
      report.errors.push((err as Error).message);
    }
  }));
}

async function listPointsReporting(repo: Repository, report: CheckReport) {
  const out = [];
  for (const { id } of await repo.listIds('snapshots')) {
    try {
      out.push({ id, point: await repo.loadRecoveryPoint(id) });
    } catch (err) {
      report.errors.push(`recovery point ${id.slice(0, 8)}: ${(err as Error).message}`);
    }
  }
  return out;
}
