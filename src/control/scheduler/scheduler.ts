import { Cron } from 'croner';
import type { Database, Queryable } from '../catalog/database.ts';
import { type Policy, type PolicyRow, policyFromRow } from '../catalog/policies.ts';
import { type ControlQueue, type JobPayloads, ORCHESTRATOR_QUEUE } from '../jobs.ts';
import { JobQueue } from '../queue/job-queue.ts';
import { errorMessage } from '../../util/errors.ts';

export interface Fire {
  policyId: string;
  scheduledFor: string;
  /** Occurrences skipped because the scheduler was not running (fired once, for the latest). */
  missed: number;
  jobId: number;
}

/**
 * Fires policies on their cron schedule, in their time zone. Each tick, for every enabled policy,
 * the latest occurrence after its last fire (or its creation or last edit) and up to now is fired: a row in
 * schedule_fires plus a `policy-fire` job, in one transaction under a lock on the policy row. So:
 * - after downtime, a policy fires once, for its latest missed occurrence (no storm of old ones);
 * - any number of schedulers (server processes) can tick at once: each occurrence fires once.
 */
export class Scheduler {
  readonly db: Database;
  readonly queue: ControlQueue;
  readonly log: (line: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #stopped = true;

  constructor(opts: { db: Database; queue?: ControlQueue; log?: (line: string) => void }) {
    this.db = opts.db;
    this.queue = opts.queue ?? new JobQueue<JobPayloads>(opts.db);
    this.log = opts.log ?? (() => {});
  }

  /** Fires what is due at `now`; returns the fires made by this call. */
  async tick(now: Date = new Date()): Promise<Fire[]> {
    const ids = await this.db.query<{ id: string }>('SELECT id FROM policies WHERE enabled ORDER BY id');
    const fires: Fire[] = [];
    for (const { id } of ids) {
      try {
        const fire = await this.db.transaction((tx) => this.#fireIfDue(tx, id, now));
        if (fire) {
          fires.push(fire);
          this.log(
            `policy ${id} fired for ${fire.scheduledFor}${fire.missed > 1 ? ` (${fire.missed - 1} earlier occurrence(s) missed while down)` : ''}`,
          );
        }
      } catch (err) {
        this.log(`policy ${id}: scheduling failed: ${errorMessage(err)}`);
      }
    }
    return fires;
  }

  async #fireIfDue(tx: Queryable, policyId: string, now: Date): Promise<Fire | undefined> {
    // Row lock: concurrent schedulers handle one policy one after the other, each seeing the other's fire.
    const [row] = await tx.query<PolicyRow>('SELECT * FROM policies WHERE id = $1 AND enabled FOR UPDATE', [policyId]);
    if (!row) return undefined;
    const policy = policyFromRow(row);
    const [last] = await tx.query<{ at: Date | string | null }>(
      'SELECT max(scheduled_for) AS at FROM schedule_fires WHERE policy_id = $1',
      [policyId],
    );
    // An edit (new cron, re-enabled …) restarts the schedule: occurrences before it are not caught up.
    const since = new Date(Math.max(last?.at ? new Date(last.at).getTime() : 0, new Date(policy.updatedAt).getTime()));
    const due = dueOccurrence(policy, since, now);
    if (!due) return undefined;
    const scheduledFor = due.latest.toISOString();
    const inserted = await tx.query(
      'INSERT INTO schedule_fires (policy_id, scheduled_for) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING policy_id',
      [policyId, scheduledFor],
    );
    if (!inserted.length) return undefined;
    const job = await this.queue.enqueue(
      {
        queue: ORCHESTRATOR_QUEUE,
        kind: 'policy-fire',
        payload: { policyId, scheduledFor },
        dedupeKey: `fire:${policyId}:${scheduledFor}`,
      },
      tx,
    );
    return { policyId, scheduledFor, missed: due.count, jobId: job.id };
  }

  /** Ticks every `intervalMs` (never two ticks at once) until stop(). */
  start(intervalMs = 15_000): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    const loop = async () => {
      this.#running = this.tick().catch((err) => this.log(`scheduler tick failed: ${errorMessage(err)}`));
      await this.#running;
      this.#running = undefined;
      if (!this.#stopped) {
        this.#timer = setTimeout(loop, intervalMs);
        this.#timer.unref();
      }
    };
    void loop();
  }

  /** Stops ticking; resolves once a tick in progress has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** The next `n` occurrences of the policy after `from`, as ISO strings, for display. */
  static nextRuns(policy: Pick<Policy, 'cron' | 'timeZone'>, n: number, from: Date = new Date()): string[] {
    return cronOf(policy)
      .nextRuns(n, from)
      .map((d) => d.toISOString());
  }

  nextRuns(policy: Pick<Policy, 'cron' | 'timeZone'>, n: number, from: Date = new Date()): string[] {
    return Scheduler.nextRuns(policy, n, from);
  }
}

function cronOf(policy: Pick<Policy, 'cron' | 'timeZone'>): Cron {
  return new Cron(policy.cron, { timezone: policy.timeZone, paused: true });
}

/**
 * The latest occurrence in (since, now], and how many there were (counted up to 1000, enough to
 * say "missed some"). Undefined if none.
 */
export function dueOccurrence(
  policy: Pick<Policy, 'cron' | 'timeZone'>,
  since: Date,
  now: Date,
): { latest: Date; count: number } | undefined {
  const cron = cronOf(policy);
  const first = cron.nextRun(since);
  if (!first || first.getTime() > now.getTime()) return undefined;
  // previousRuns counts a run earlier in the same second as the reference, so +1 ms makes `now` inclusive.
  let latest = cron.previousRuns(1, new Date(now.getTime() + 1))[0];
  if (!latest || latest.getTime() > now.getTime() || latest.getTime() < first.getTime()) latest = first;
  let count = 1;
  for (let t: Date | null = first; count < 1000; count++) {
    t = cron.nextRun(t);
    if (!t || t.getTime() > latest.getTime()) break;
  }
  return { latest, count };
}
