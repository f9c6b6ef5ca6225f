import { hostname } from 'node:os';
import { packEntriesToIndex, type IndexFile } from './chunk-index.ts';
import { mapLimit } from './concurrency.ts';
import { DATA_PREFIX, ObjectType, formatBytes, idOfName, objectName, packObjectName } from './format.ts';
import { finishInMemory, PackBuilder } from './pack.ts';
import type { Repository } from './repository.ts';
import {
  DEFAULT_STALE_AFTER_MS,
  isLive,
  readPrunePlans,
  readSessions,
  RepositorySession,
  type PrunePlan,
} from './sessions.ts';
import { randomHex } from './crypto.ts';
import type { FileSystemError } from './backend/fs-errors.ts';

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
  /** Temp files of interrupted writes removed. */
  deletedLeftovers: number;
  /** Markers of backups and restores that died, removed. */
  deletedSessions: number;
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
  /** Every stored pack, with its size. */
  stored: Map<string, { size: number; mtime: number }>;
}

const HOUR = 3_600_000;
/**
 * Objects written by a live session are protected by their mtime being later than the session's
 * start; but object stores give mtimes to the second (S3's LastModified). So on those, anything
 * from a second before the oldest live session on is protected too.
 */
function sessionStart(repo: Repository, started: string): number {
  const granularity = repo.backend.mtimeGranularityMs ?? 0;
  return Date.parse(started) - 2 * granularity;
}

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
  const maxUnusedShare = opts.maxUnusedShare ?? 0.1;
  const log = opts.log ?? (() => {});
  await clearOldPlans(repo, staleAfterMs);
  const report: PruneReport = {
    deletedPacks: 0,
    repackedPacks: 0,
    newPacks: 0,
    freedBytes: 0,
    deletedIndexFiles: 0,
    deletedFixedIndexes: 0,
    keptPacks: 0,
    deletedLeftovers: 0,
    deletedSessions: 0,
  };

  // First what needs no plan, because nothing can refer to it: markers of dead sessions, temp
  // files of interrupted writes, packs no index names, old fixed indexes no recovery point names.
  // Deleted before prune writes anything, so that on a full disk they make room for the plan.
  const leftovers = await findLeftovers(repo, graceMs, staleAfterMs);
  const first = await survey(repo, graceMs, staleAfterMs, maxUnusedShare);
  const indexedDoomed = [...first.doomed].filter((p) => !first.orphans.has(p));
  report.keptPacks = first.keptPacks;
  log(
    `${first.used.size} chunks in use; ${first.doomed.size} packs to remove (${first.orphans.size} unindexed), ${first.doomedFixedIndexes.length} unused fixed indexes, ` +
      `${leftovers.temporary.length} temp files and ${leftovers.sessions.length} dead session markers`,
  );
  if (opts.dryRun) {
    report.deletedPacks = first.doomed.size;
    report.deletedFixedIndexes = first.doomedFixedIndexes.length;
    report.deletedLeftovers = leftovers.temporary.length;
    report.deletedSessions = leftovers.sessions.length;
    return report;
  }
  await mapLimit(leftovers.sessions, 8, (id) => repo.backend.delete(objectName(ObjectType.session, id)));
  await mapLimit(leftovers.temporary, 8, async (t) => {
    await repo.backend.delete(t.name);
    report.freedBytes += t.size;
  });
  await mapLimit([...first.orphans], 8, async (pack) => {
    report.freedBytes += first.stored.get(pack)?.size ?? 0;
    await repo.backend.delete(packObjectName(pack));
  });
  await mapLimit(first.doomedFixedIndexes, 8, (id) => repo.backend.delete(objectName(ObjectType.fixedIndex, id)));
  report.deletedSessions = leftovers.sessions.length;
  report.deletedLeftovers = leftovers.temporary.length;
  report.deletedPacks = first.orphans.size;
  report.deletedFixedIndexes = first.doomedFixedIndexes.length;
  if (indexedDoomed.length === 0) return report;

  // Prune holds a session too, from here on (after the deletions above, which a full disk may
  // need to store it): another prune racing this one (both saw no plan) then protects the packs
  // this one writes from being taken for a crashed backup's leftovers.
  let session: RepositorySession;
  try {
    session = await RepositorySession.start(repo, PRUNE_SESSION);
  } catch (err) {
    throw diskFull(err, repo, report, indexedDoomed.length);
  }
  try {
    return await sweepPlanned(
      repo,
      opts,
      graceMs,
      staleAfterMs,
      maxUnusedShare,
      log,
      report,
      indexedDoomed,
      session.id,
    );
  } finally {
    await session.end();
  }
}

const PRUNE_SESSION = 'prune';

function diskFull(err: unknown, repo: Repository, report: PruneReport, packs: number): Error {
  if ((err as FileSystemError).code !== 'ENOSPC') return err as Error;
  return new Error(
    `the disk holding ${repo.location} is full: prune freed ${formatBytes(report.freedBytes)} of leftovers and unreachable data, ` +
      `but still cannot write its plan (a few KiB) before deleting ${packs} packs; free a little space there and run prune again`,
  );
}

/** The packs an index names: announced in a plan, waited for, repacked and deleted. */
async function sweepPlanned(
  repo: Repository,
  opts: PruneOptions,
  graceMs: number,
  staleAfterMs: number,
  maxUnusedShare: number,
  log: (line: string) => void,
  report: PruneReport,
  indexedDoomed: string[],
  ownSession: string,
): Promise<PruneReport> {
  const planId = randomHex(16);
  const plan: PrunePlan = {
    created: new Date().toISOString(),
    hostname: hostname(),
    pid: process.pid,
    packs: indexedDoomed,
    indexFiles: [],
  };
  try {
    await repo.putNamedObject(ObjectType.prunePlan, planId, Buffer.from(JSON.stringify(plan)));
  } catch (err) {
    throw diskFull(err, repo, report, indexedDoomed.length);
  }
  try {
    // Two prunes that started together both passed clearOldPlans; each wrote its plan before
    // reading the others', so at least one sees the other here, and steps back.
    const others = (await readPrunePlans(repo)).filter((p) => p.id !== planId && isLivePlan(p.plan, staleAfterMs));
    if (others.length > 0) throw anotherPrune(others[0].plan);
    await waitForEarlierSessions(
      repo,
      Date.parse(plan.created),
      staleAfterMs,
      opts.waitMs ?? HOUR,
      opts.pollMs ?? 2000,
      log,
    );
    // Backups that ended while we waited may have committed recovery points using chunks of the
    // doomed packs: look again, and copy out whatever is used now.
    const now = await survey(repo, graceMs, staleAfterMs, maxUnusedShare, ownSession);
    const doomed = new Set(indexedDoomed);
    // Packs with no used chunk go first: nothing needs copying out of them, and on a full disk
    // the space they free is what the copies and the replacement index are written into. Index
    // files still name them until the replacement is written; no reader needs their chunks.
    const unused = indexedDoomed.filter((p) => !(now.packs.get(p)?.chunks ?? []).some((c) => now.used.has(c.id)));
    await mapLimit(unused, 8, async (pack) => {
      report.freedBytes += now.stored.get(pack)?.size ?? 0;
      await repo.backend.delete(packObjectName(pack));
    });
    const { packs: newPacks, sourcePacks } = await copyUsedChunks(repo, now, doomed, log);
    const replacement: IndexFile = {
      packs: [...newPacks, ...[...now.packs.values()].filter((p) => !doomed.has(p.id))],
      supersedes: now.indexFiles.map((f) => f.id),
    };
    await repo.writeIndexFile(replacement);
    // Everything the replacement index does not name is unreachable from here on.
    const repacked = indexedDoomed.filter((p) => !unused.includes(p));
    await mapLimit(repacked, 8, async (pack) => {
      report.freedBytes += now.stored.get(pack)?.size ?? 0;
      await repo.backend.delete(packObjectName(pack));
    });
    await mapLimit(now.indexFiles, 8, (f) => repo.backend.delete(objectName(ObjectType.index, f.id)));
    await mapLimit(now.doomedFixedIndexes, 8, (id) => repo.backend.delete(objectName(ObjectType.fixedIndex, id)));
    report.deletedPacks += indexedDoomed.length;
    report.repackedPacks = sourcePacks;
    report.newPacks = newPacks.length;
    report.deletedIndexFiles = now.indexFiles.length;
    report.deletedFixedIndexes += now.doomedFixedIndexes.length;
    log(
      `removed ${report.deletedPacks} packs (${formatBytes(report.freedBytes)} freed in all), wrote ${newPacks.length} new packs`,
    );
    return report;
  } finally {
    await repo.backend.delete(objectName(ObjectType.prunePlan, planId));
  }
}

/**
 * Leftovers of processes that died: session markers no live process refreshes, and temp files
 * of writes that never finished, older than the grace period and than the oldest live session
 * (a running backup's temp file is younger than its session). A session marker's temp file is
 * kept for as long as a marker may go unrefreshed, whatever the grace: prune --grace 0 beside a
 * backup that is just starting must not take its marker away.
 */
export async function findLeftovers(
  repo: Repository,
  graceMs: number,
  staleAfterMs: number,
): Promise<{ sessions: string[]; temporary: { name: string; size: number }[] }> {
  const now = Date.now();
  const all = await readSessions(repo);
  const live = all.filter((s) => isLive(s.marker, staleAfterMs, now));
  const protectedSince = Math.min(now - graceMs, ...live.map((s) => sessionStart(repo, s.marker.started)));
  const temporary: { name: string; size: number }[] = [];
  // A session marker's own first write comes before its session exists, so nothing above protects
  // it: its temp file goes only once it is as old as a marker that stopped being refreshed.
  const markerProtectedSince = Math.min(protectedSince, now - staleAfterMs);
  const markerPrefix = objectName(ObjectType.session, '');
  if (repo.backend.listLeftovers) {
    for await (const t of repo.backend.listLeftovers()) {
      const since = t.name.startsWith(markerPrefix) ? markerProtectedSince : protectedSince;
      if (t.mtime.getTime() < since) temporary.push({ name: t.name, size: t.size });
    }
  }
  return { sessions: all.filter((s) => !live.includes(s)).map((s) => s.id), temporary };
}

async function survey(
  repo: Repository,
  graceMs: number,
  staleAfterMs: number,
  maxUnusedShare: number,
  ownSession?: string,
): Promise<Survey> {
  const now = Date.now();
  const sessions = (await readSessions(repo)).filter((s) => s.id !== ownSession && isLive(s.marker, staleAfterMs, now));
  const oldestLive = Math.min(now, ...sessions.map((s) => sessionStart(repo, s.marker.started)));
  // Anything written after this may belong to a backup still running or just finished.
  const protectedSince = Math.min(now - graceMs, oldestLive);

  const stored = new Map<string, { size: number; mtime: number }>();
  for await (const o of repo.backend.list(DATA_PREFIX))
    stored.set(idOfName(o.name), { size: o.size, mtime: o.mtime.getTime() });

  const indexFiles = await repo.readIndexFiles();
  const superseded = new Set(indexFiles.flatMap((f) => f.file.supersedes ?? []));
  const packs: Survey['packs'] = new Map();
  for (const { id, file } of indexFiles) {
    if (superseded.has(id)) continue;
    for (const p of file.packs) if (!packs.has(p.id)) packs.set(p.id, p);
  }

  const referenced = new Set((await repo.listRecoveryPoints()).flatMap((e) => e.point.disks.map((d) => d.fixedIndex)));
  const roots: string[] = [];
  const doomedFixedIndexes: string[] = [];
  for (const f of await repo.listIds(ObjectType.fixedIndex)) {
    if (referenced.has(f.id) || f.mtime.getTime() >= protectedSince) roots.push(f.id);
    else doomedFixedIndexes.push(f.id);
  }
  const used = new Set<string>();
  await mapLimit(roots, 8, async (id) => {
    for (const chunk of (await repo.loadFixedIndex(id)).storedIds()) used.add(chunk);
  });

  const doomed = new Set<string>();
  const orphans = new Set<string>();
  let keptPacks = 0;
  for (const pack of packs.values()) {
    const usedBytes = pack.chunks.reduce((sum, c) => sum + (used.has(c.id) ? c.length : 0), 0);
    if (usedBytes === 0 || 1 - usedBytes / pack.size > maxUnusedShare) doomed.add(pack.id);
    else keptPacks++;
  }
  for (const [pack, info] of stored) {
    if (!packs.has(pack) && info.mtime < protectedSince) {
      doomed.add(pack);
      orphans.add(pack);
    }
  }
  return { indexFiles, packs, used, doomed, orphans, doomedFixedIndexes, keptPacks, stored };
}

/**
 * Copies into new packs, as they are (still sealed), the used chunks that exist only in doomed
 * packs. A chunk also stored in a surviving pack (two backups stored it) needs no copy.
 */
async function copyUsedChunks(
  repo: Repository,
  s: Survey,
  doomed: Set<string>,
  log: (l: string) => void,
): Promise<{ packs: IndexedPack[]; sourcePacks: number }> {
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
    const { id, data } = finishInMemory(builder, repo.key.dataKey);
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

async function waitForEarlierSessions(
  repo: Repository,
  planTime: number,
  staleAfterMs: number,
  waitMs: number,
  pollMs: number,
  log: (l: string) => void,
): Promise<void> {
  const deadline = Date.now() + waitMs;
  let said = false;
  for (;;) {
    // Another prune's session does not block: it never reuses chunks, and two prunes waiting for
    // each other would wait forever.
    const blocking = (await readSessions(repo)).filter(
      (s) =>
        s.marker.what !== PRUNE_SESSION && isLive(s.marker, staleAfterMs) && Date.parse(s.marker.started) <= planTime,
    );
    if (blocking.length === 0) return;
    const names = blocking.map((s) => `${s.marker.what} on ${s.marker.hostname} since ${s.marker.started}`).join('; ');
    if (Date.now() >= deadline)
      throw new Error(
        `prune gave up waiting for running backups to end (${names}); nothing was deleted; run prune again later`,
      );
    if (!said) {
      log(`waiting for ${blocking.length} running backup(s) or restore(s) to end: ${names}`);
      said = true;
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Removes plans left by a prune that died; refuses to run beside one that is alive. */
export async function clearOldPlans(repo: Repository, staleAfterMs: number): Promise<void> {
  for (const { id, plan } of await readPrunePlans(repo)) {
    if (isLivePlan(plan, staleAfterMs)) throw anotherPrune(plan);
    await repo.backend.delete(objectName(ObjectType.prunePlan, id));
  }
}

function isLivePlan(plan: PrunePlan, staleAfterMs: number): boolean {
  const marker = {
    hostname: plan.hostname,
    pid: plan.pid,
    started: plan.created,
    heartbeat: plan.created,
    what: 'prune',
  };
  return plan.hostname === hostname() ? isLive(marker, Infinity) : isLive(marker, staleAfterMs);
}

function anotherPrune(plan: PrunePlan): Error {
  return new Error(
    `another prune is running (on ${plan.hostname}, pid ${plan.pid}, since ${plan.created}); run one prune at a time`,
  );
}
