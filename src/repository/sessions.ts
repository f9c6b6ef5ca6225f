import { hostname } from 'node:os';
import { randomHex } from './crypto.ts';
import { ObjectType, objectName } from './format.ts';
import type { Repository } from './repository.ts';

/**
 * Backups and prune coordinate without a lock, through two kinds of small objects:
 *
 * - a backup (or a restore) writes a session marker `sessions/<id>` before it reads the index,
 *   refreshes it while it runs, and deletes it at the end;
 * - prune writes a plan `prune/<id>` naming the packs it is about to delete before it looks for
 *   sessions, and deletes the plan when done.
 *
 * A backup that starts after a plan exists sees it and does not reuse chunks from the planned
 * packs (it stores them anew). A backup that started earlier has its marker seen by prune, which
 * then keeps the planned packs until that backup is over. Each side writes before it reads, so
 * at least one of them sees the other (the backends list what they have written, strongly).
 */
export interface SessionMarker {
  hostname: string;
  pid: number;
  started: string;
  heartbeat: string;
  what: string;
}

export interface PrunePlan {
  created: string;
  hostname: string;
  pid: number;
  /** Packs to delete once no backup that may reuse them is running. */
  packs: string[];
  /** Index files to delete with them (replaced by `replacementIndex`). */
  indexFiles: string[];
  replacementIndex?: string;
}

export const HEARTBEAT_MS = 60_000;
/** A marker not refreshed for this long belongs to a backup that died. */
export const DEFAULT_STALE_AFTER_MS = 10 * 60_000;

export class RepositorySession {
  private timer?: NodeJS.Timeout;
  private readonly repo: Repository;
  private marker: SessionMarker;
  readonly id: string;
  /** Packs a pending prune will delete: this session must not reuse chunks from them. */
  readonly excludedPacks: Set<string>;

  private constructor(repo: Repository, id: string, marker: SessionMarker, excludedPacks: Set<string>) {
    this.repo = repo;
    this.id = id;
    this.marker = marker;
    this.excludedPacks = excludedPacks;
  }

  static async start(repo: Repository, what: string): Promise<RepositorySession> {
    const now = new Date().toISOString();
    const marker: SessionMarker = { hostname: hostname(), pid: process.pid, started: now, heartbeat: now, what };
    const id = randomHex(16);
    await repo.putNamedObject(ObjectType.session, id, Buffer.from(JSON.stringify(marker)));
    const plans = await readPrunePlans(repo);
    const session = new RepositorySession(repo, id, marker, new Set(plans.flatMap((p) => p.plan.packs)));
    session.timer = setInterval(() => void session.beat(), HEARTBEAT_MS).unref();
    return session;
  }

  private async beat(): Promise<void> {
    this.marker = { ...this.marker, heartbeat: new Date().toISOString() };
    try {
      await this.repo.putNamedObject(ObjectType.session, this.id, Buffer.from(JSON.stringify(this.marker)));
    } catch {
      // A missed heartbeat only makes prune wait longer; the next one will try again.
    }
  }

  async end(): Promise<void> {
    clearInterval(this.timer);
    await this.repo.backend.delete(objectName(ObjectType.session, this.id));
  }
}

export async function readSessions(repo: Repository): Promise<{ id: string; marker: SessionMarker }[]> {
  const out = [];
  for (const { id } of await repo.listIds(ObjectType.session)) {
    try {
      out.push({ id, marker: await repo.getJson<SessionMarker>(ObjectType.session, id) });
    } catch {
      // Deleted between list and read: that session just ended.
    }
  }
  return out;
}

/** Whether a session may still be running: fresh heartbeat, and, on this host, a live process. */
export function isLive(marker: SessionMarker, staleAfterMs: number, now = Date.now()): boolean {
  if (now - Date.parse(marker.heartbeat) > staleAfterMs) return false;
  if (marker.hostname === hostname()) {
    try {
      process.kill(marker.pid, 0);
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  return true;
}

export async function readPrunePlans(repo: Repository): Promise<{ id: string; plan: PrunePlan }[]> {
  const out = [];
  for (const { id } of await repo.listIds(ObjectType.prunePlan)) {
    try {
      out.push({ id, plan: await repo.getJson<PrunePlan>(ObjectType.prunePlan, id) });
    } catch {
      // Deleted between list and read: that prune finished.
    }
  }
  return out;
}
