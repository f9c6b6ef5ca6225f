import { hostname } from 'node:os';
import { packEntriesToIndex, type IndexFile } from './chunk-index.ts';
import { mapLimit } from './concurrency.ts';
import { DATA_PREFIX, ObjectType, formatBytes, idOfName, objectName, packObjectName } from './format.ts';
import { PackBuilder } from './pack.ts';
import type { Repository } from './repository.ts';
import { DEFAULT_STALE_AFTER_MS, isLive, readPrunePlans, readSessions, type PrunePlan } from './sessions.ts';
import { randomHex } from './crypto.ts';

export interface PruneOptions {
  /** Unreferenced fixed indexes and unindexed packs younger than this are left alone. Default 1 h. */
  graceMs?: number;
  staleAfterMs?: number;
  /** How long to wait for backups that started before this prune to end. Default 1 h. */
  waitMs?: number;
  pollMs?: number;
  /** Packs with more than this share of unused bytes are rewritten. Default 0.1. */
  maxUnusedShare?: number;
  dryRun?: boolean;
  log?: (line: string) => void;
}

export interface PruneReport {
  deletedPacks: number;
  repackedPacks: number;
  newPacks: number;
  freedBytes: number;
  deletedIndexFiles: number;
  deletedFixedIndexes: number;
  keptPacks: number;
}

type IndexedPack = IndexFile['packs'][number];

/** What one look at the repository found, and what prune would do about it. */
interface Survey {
  indexFiles: { id: string; file: IndexFile }[];
  /** Packs named by index files that are not superseded. */
  packs: Map<string, IndexedPack>;
  used: Set<string>;
  /** Packs to delete, after their used chunks are copied out. */
  doomed: Set<string>;
  /** Doomed packs that no index names (left by an interrupted backup). */
  orphans: Set<string>;
  doomedFixedIndexes: string[];
  keptPacks: number;
}

const HOUR = 3_600_000;

/**
 * Mark and sweep. Mark: every chunk that a recovery point needs, or a recent or in-progress
 * backup's fixed index needs, is used. Sweep: packs with no used chunk are deleted; packs with
 * much unused space have their used chunks copied into new packs, then are deleted; packs no
 * index names (crashed backups) are deleted once older than the grace period.
 *
 * Safe against backups running at the same time through the plan/session protocol described in
 * sessions.ts: prune announces the packs it will delete, waits for the backups that could not have
 * seen the announcement, looks again, and only then copies and deletes.
 */
export async function prune(repo: Repository, opts: PruneOptions = {}): Promise<PruneReport> {
  const graceMs = opts.graceMs ?? HOUR;
  const staleAfterMs = opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const log = opts.log ?? (() => {});
  await clearOldPlans(repo, staleAfterMs);

  const first = await survey(repo, graceMs, staleAfterMs, opts.maxUnusedShare ?? 0.1);
  log(`${first.used.size} chunks in use; ${first.doomed.size} packs to remove (${first.orphans.size} unindexed), ${first.doomedFixedIndexes.length} unused fixed indexes`);
  const report: PruneReport = { deletedPacks: 0, repackedPacks: 0, newPacks: 0, freedBytes: 0, deletedIndexFiles: 0, deletedFixedIndexes: 0, keptPacks: first.keptPacks };
  if (first.doomed.size === 0 && first.doomedFixedIndexes.length === 0) return report;
  if (opts.dryRun) {
    report.deletedPacks = first.doomed.size;
    report.deletedFixedIndexes = first.doomedFixedIndexes.length;
    return report;
  }

  const planId = randomHex(16);
  const plan: PrunePlan = { created: new Date().toISOString(), hostname: hostname(), pid: process.pid, packs: [...first.doomed], indexFiles: [] };
  await repo.putNamedObject(ObjectType.prunePlan, planId, Buffer.from(JSON.stringify(plan)));
  try {
    await waitForEarlierSessions(repo, Date.parse(plan.created), staleAfterMs, opts.waitMs ?? HOUR, opts.pollMs ?? 2000, log);
    // Backups that ended while we waited may have committed recovery points using chunks of the
    // doomed packs: look again, and copy out whatever is used now.
    const now = await survey(repo, graceMs, staleAfterMs, opts.maxUnusedShare ?? 0.1);
    const doomed = [...first.doomed];
    const { packs: newPacks, sourcePacks } = await copyUsedChunks(repo, now, first.doomed, log);
    const replacement: IndexFile = {
      packs: [...newPacks, ...[...now.packs.values()].filter(p => !first.doomed.has(p.id))],
      supersedes: now.indexFiles.map(f => f.id),
    };
    await repo.writeIndexFile(replacement);
    // Everything the replacement index does not name is unreachable from here on.
    await mapLimit(doomed, 8, async pack => {
      report.freedBytes += (await repo.backend.stat(packObjectName(pack)))?.size ?? 0;
      await repo.backend.delete(packObjectName(pack));
    });
    await mapLimit(now.indexFiles, 8, f => repo.backend.delete(objectName(ObjectType.index, f.id)));
    await mapLimit(now.doomedFixedIndexes, 8, id => repo.backend.delete(objectName(ObjectType.fixedIndex, id)));
    report.deletedPacks = doomed.length;
    report.repackedPacks = sourcePacks;
    report.newPacks = newPacks.length;
    report.deletedIndexFiles = now.indexFiles.length;
    report.deletedFixedIndexes = now.doomedFixedIndexes.length;
    log(`removed ${doomed.length} packs (${formatBytes(report.freedBytes)}), wrote ${newPacks.length} new packs`);
    return report;
  } finally {
    await repo.backend.delete(objectName(ObjectType.prunePlan, planId));
  }
}

async function survey(repo: Repository, graceMs: number, staleAfterMs: number, maxUnusedShare: number): Promise<Survey> {
  const now = Date.now();
  const sessions = (await readSessions(repo)).filter(s => isLive(s.marker, staleAfterMs, now));
  const oldestLive = Math.min(now, ...sessions.map(s => Date.parse(s.marker.started)));
  // Anything written after this may belong to a backup still running or just finished.
  const protectedSince = Math.min(now - graceMs, oldestLive);

  const stored = new Map<string, { size: number; mtime: number }>();
  for await (const o of repo.backend.list(DATA_PREFIX)) stored.set(idOfName(o.name), { size: o.size, mtime: o.mtime.getTime() });

  const indexFiles = await repo.readIndexFiles();
  const superseded = new Set(indexFiles.flatMap(f => f.file.supersedes ?? []));
  const packs: Survey['packs'] = new Map();
  for (const { id, file } of indexFiles) {
    if (superseded.has(id)) continue;
    for (const p of file.packs) if (!packs.has(p.id)) packs.set(p.id, p);
  }

  const referenced = new Set((await repo.listRecoveryPoints()).flatMap(e => e.point.disks.map(d => d.fixedIndex)));
  const roots: string[] = [];
  const doomedFixedIndexes: string[] = [];
  for (const f of await repo.listIds(ObjectType.fixedIndex)) {
    if (referenced.has(f.id) || f.mtime.getTime() >= protectedSince) roots.push(f.id);
    else doomedFixedIndexes.push(f.id);
  }
  const used = new Set<string>();
  await mapLimit(roots, 8, async id => {
    for (const chunk of (await repo.loadFixedIndex(id)).storedIds()) used.add(chunk);
  });

  const doomed = new Set<string>();
  const orphans = new Set<string>();
  let keptPacks = 0;
  for (const pack of packs.values()) {
    const usedBytes = pack.chunks.reduce((sum, c) => sum + (used.has(c.id) ? c.length : 0), 0);
    if (usedBytes === 0 || 1 - usedBytes / pack.size > maxUnusedShare) doomed.add(pack.id); else keptPacks++;
  }
  for (const [pack, info] of stored) {
    if (!packs.has(pack) && info.mtime < protectedSince) { doomed.add(pack); orphans.add(pack); }
  }
  return { indexFiles, packs, used, doomed, orphans, doomedFixedIndexes, keptPacks };
}

/**
 * Copies into new packs, as they are (still sealed), the used chunks that exist only in doomed
 * packs. A chunk also stored in a surviving pack (two backups stored it) needs no copy.
 */
async function copyUsedChunks(repo: Repository, s: Survey, doomed: Set<string>, log: (l: string) => void): Promise<{ packs: IndexedPack[]; sourcePacks: number }> {
  const surviving = new Set<string>();
  for (const p of s.packs.values()) if (!doomed.has(p.id)) for (const c of p.chunks) surviving.add(c.id);
  const wanted = new Map<string, IndexedPack['chunks']>();
  const copied = new Set<string>();
  for (const p of s.packs.values()) {
    if (!doomed.has(p.id)) continue;
    for (const c of p.chunks) {
      if (!s.used.has(c.id) || surviving.has(c.id) || copied.has(c.id)) continue;
      copied.add(c.id);
      wanted.set(p.id, [...(wanted.get(p.id) ?? []), c]);
    }
  }
  const written: IndexedPack[] = [];
  let builder = new PackBuilder();
  const closePack = async () => {
    if (builder.entries.length === 0) return;
    const { id, data } = builder.finish(repo.key.dataKey);
    await repo.backend.put(packObjectName(id), data);
    written.push({ id, size: data.length, chunks: packEntriesToIndex(builder.entries) });
    builder = new PackBuilder();
  };
  for (const [pack, chunks] of wanted) {
    const bytes = await repo.readPack(pack, 0, s.packs.get(pack)!.size);
    for (const c of chunks) {
      builder.add(Buffer.from(c.id, 'hex'), bytes.subarray(c.offset, c.offset + c.length), c.rawLength, c.compression);
      if (builder.size >= repo.config.packSize) await closePack();
    }
  }
  await closePack();
  if (written.length > 0) log(`copied used chunks of ${wanted.size} packs into ${written.length} new packs`);
  return { packs: written, sourcePacks: wanted.size };
}

async function waitForEarlierSessions(repo: Repository, planTime: number, staleAfterMs: number, waitMs: number, pollMs: number, log: (l: string) => void): Promise<void> {
  const deadline = Date.now() + waitMs;
  let said = false;
  for (;;) {
    const blocking = (await readSessions(repo)).filter(s => isLive(s.marker, staleAfterMs) && Date.parse(s.marker.started) <= planTime);
    if (blocking.length === 0) return;
    const names = blocking.map(s => `${s.marker.what} on ${s.marker.hostname} since ${s.marker.started}`).join('; ');
    if (Date.now() >= deadline) throw new Error(`prune gave up waiting for running backups to end (${names}); nothing was deleted; run prune again later`);
    if (!said) { log(`waiting for ${blocking.length} running backup(s) to end: ${names}`); said = true; }
    await new Promise(r => setTimeout(r, pollMs));
  }
}

/** Removes plans left by a prune that died; refuses to run beside one that is alive. */
async function clearOldPlans(repo: Repository, staleAfterMs: number): Promise<void> {
  for (const { id, plan } of await readPrunePlans(repo)) {
    const marker = { hostname: plan.hostname, pid: plan.pid, started: plan.created, heartbeat: plan.created, what: 'prune' };
    if (plan.hostname === hostname() ? isLive(marker, Infinity) : isLive(marker, staleAfterMs)) {
      throw new Error(`another prune is running (on ${plan.hostname}, pid ${plan.pid}, since ${plan.created}); run one prune at a time`);
    }
    await repo.backend.delete(objectName(ObjectType.prunePlan, id));
  }
}
