import { EventEmitter } from 'node:events';
import type { Database, Queryable } from '../catalog/database.ts';
import { iso } from '../../util/time.ts';

/**
 * A durable job queue on the catalog database (docs/control-plane.md, "Queues").
 *
 * A worker claims a job with a lease and must heartbeat before the lease runs out; a job whose
 * worker died (lease expired) is claimable again. That is how the work of a killed data proxy gets
 * picked up by another. Claims use FOR UPDATE SKIP LOCKED, so any number of workers on any number
 * of machines can claim from the same queue without ever getting the same job.
 *
 * Jobs with a dedupe key are enqueued once: enqueueing the same key again returns the existing job,
 * whatever its state (the key stays taken for as long as the row exists).
 */
export type JobState = 'queued' | 'running' | 'done' | 'failed';

export interface Job<P = unknown, K extends string = string> {
  id: number;
  queue: string;
  kind: K;
  payload: P;
  dedupeKey?: string;
  state: JobState;
  /** Claims so far (a claim after an expired lease counts). */
  attempts: number;
  maxAttempts: number;
  runAfter: string;
  lockedBy?: string;
  leaseUntil?: string;
  progress?: unknown;
  result?: unknown;
  lastError?: string;
  createdAt: string;
  updatedAt: string;
}

/**
 * Job kinds and their payloads, e.g. `{ transfer: { runId: string } }`: the queue is typed by such a
 * map, so that a claimed job's payload is known from its kind.
 */
export type PayloadMap = object;

/** A job of one of the map's kinds: checking `kind` narrows `payload`. */
export type JobOf<M extends PayloadMap> = { [K in keyof M & string]: Job<M[K], K> }[keyof M & string];

export interface EnqueueRequest<P = unknown, K extends string = string> {
  queue: string;
  kind: K;
  payload: P;
  dedupeKey?: string;
  /** Not claimable before this time (default now). */
  runAfter?: Date;
  /** Default 5. */
  maxAttempts?: number;
}

/** The channel every change of a job's state or progress is notified on (trigger of migration 9). */
export const JOBS_CHANNEL = 'goldsnap_jobs';

/**
 * A job changed, in this process or another: a job was enqueued, claimed, finished, failed, or
 * reported progress. `undefined` means notifications may have been missed (the LISTEN connection
 * was made again): look at everything.
 */
export type JobChange = { queue: string; state: JobState; runId?: string } | undefined;

export interface QueueDepth {
  /** Waiting, due now or later. */
  queued: number;
  /** Waiting and due now. */
  ready: number;
  /** Claimed by a worker (including ones whose lease has expired and are about to be reclaimed). */
  running: number;
}

interface JobRow {
  id: string | number;
  queue: string;
  kind: string;
  payload: unknown;
  dedupe_key: string | null;
  state: JobState;
  attempts: number;
  max_attempts: number;
  run_after: Date | string;
  locked_by: string | null;
  lease_until: Date | string | null;
  progress: unknown;
  result: unknown;
  last_error: string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

/** Rows carry the kind they were enqueued with, and only kinds of the map are enqueued. */
function jobFromRow<M extends PayloadMap>(r: JobRow): JobOf<M> {
  const job: Job = {
    id: Number(r.id),
    queue: r.queue,
    kind: r.kind,
    payload: r.payload,
    state: r.state,
    attempts: Number(r.attempts),
    maxAttempts: Number(r.max_attempts),
    runAfter: iso(r.run_after),
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
  if (r.dedupe_key !== null) job.dedupeKey = r.dedupe_key;
  if (r.locked_by !== null) job.lockedBy = r.locked_by;
  if (r.lease_until !== null) job.leaseUntil = iso(r.lease_until);
  if (r.progress !== null && r.progress !== undefined) job.progress = r.progress;
  if (r.result !== null && r.result !== undefined) job.result = r.result;
  if (r.last_error !== null) job.lastError = r.last_error;
  return job as JobOf<M>;
}

const ms = (n: number) => {
  if (!Number.isFinite(n) || n < 0) throw new Error(`invalid duration ${n} ms`);
  return n;
};

const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));

export class JobQueue<M extends PayloadMap = Record<string, unknown>> {
  readonly db: Database;
  /** Job changes as the database notifies them (JOBS_CHANNEL), for claimNext's waiters. */
  readonly #events = new EventEmitter();
  #listening: Promise<unknown> | undefined;

  constructor(db: Database) {
    this.db = db;
    this.#events.setMaxListeners(0);
  }

  /**
   * Calls `fn` on every job change on this catalog, from any process (the database's NOTIFY,
   * sent at commit). Returns a function that stops it.
   */
  onChange(fn: (change: JobChange) => void): Promise<() => Promise<void>> {
    return this.db.listen(JOBS_CHANNEL, (payload) => {
      if (payload === undefined) return fn(undefined);
      try {
        const { queue, state, runId } = JSON.parse(payload) as { queue: string; state: JobState; runId: string | null };
        fn(runId ? { queue, state, runId } : { queue, state });
      } catch {
        fn(undefined);
      }
    });
  }

  /** Adds a job, or returns the existing one with the same dedupe key. Pass `tx` to enqueue inside a transaction. */
  async enqueue<K extends keyof M & string>(
    req: EnqueueRequest<M[K], K>,
    tx: Queryable = this.db,
  ): Promise<Job<M[K], K>> {
    if (!req.queue || !req.kind) throw new Error('a job needs a queue and a kind');
    const maxAttempts = req.maxAttempts ?? 5;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
      throw new Error(`maxAttempts must be a whole number ≥ 1, not ${maxAttempts}`);
    const [row] = await tx.query<JobRow>(
      `INSERT INTO jobs (queue, kind, payload, dedupe_key, max_attempts, run_after)
       VALUES ($1, $2, $3, $4, $5, coalesce($6::timestamptz, now()))
       ON CONFLICT (dedupe_key) DO NOTHING RETURNING *`,
      [
        req.queue,
        req.kind,
        JSON.stringify(req.payload ?? {}),
        req.dedupeKey ?? null,
        maxAttempts,
        req.runAfter?.toISOString() ?? null,
      ],
    );
    // Waiters (here and in other processes) are woken by the row's trigger, at commit.
    if (row) return jobFromRow<M>(row) as Job<M[K], K>;
    const [existing] = await tx.query<JobRow>('SELECT * FROM jobs WHERE dedupe_key = $1', [req.dedupeKey]);
    if (!existing) throw new Error(`job with dedupe key ${req.dedupeKey} vanished while enqueueing`);
    return jobFromRow<M>(existing) as Job<M[K], K>;
  }

  /**
   * Claims the next due job of `queue` for `workerId`, leased for `leaseMs`: a queued job whose
   * time has come, or a running one whose lease expired (its worker is presumed dead). A job whose
   * lease expired on its last allowed attempt is failed instead of being claimed again.
   */
  async claim(queue: string, workerId: string, leaseMs: number): Promise<JobOf<M> | undefined> {
    await this.db.query(
      `UPDATE jobs SET state = 'failed', last_error = coalesce(last_error || '; ', '') || 'lease of ' || coalesce(locked_by, '?') || ' expired on the last attempt',
              lease_until = NULL, updated_at = now()
       WHERE queue = $1 AND state = 'running' AND lease_until < now() AND attempts >= max_attempts`,
      [queue],
    );
    const [row] = await this.db.query<JobRow>(
      `UPDATE jobs SET state = 'running', locked_by = $2, lease_until = now() + $3::float8 * interval '1 millisecond',
              attempts = attempts + 1, claimed_at = now(), updated_at = now()
       WHERE id = (
         SELECT id FROM jobs
         WHERE queue = $1 AND ((state = 'queued' AND run_after <= now()) OR (state = 'running' AND lease_until < now() AND attempts < max_attempts))
         ORDER BY run_after, id
         LIMIT 1
         FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [queue, workerId, ms(leaseMs)],
    );
    return row && jobFromRow<M>(row);
  }

  /**
   * Claims a job, waiting for one if there is none: wakes when the database notifies a change of
   * the queue (from any process), and looks every `pollMs` anyway (jobs due later, expired leases,
   * a missed notification). Returns undefined if `signal` aborts first.
   */
  async claimNext(
    queue: string,
    workerId: string,
    leaseMs: number,
    opts: { pollMs?: number; signal?: AbortSignal } = {},
  ): Promise<JobOf<M> | undefined> {
    const pollMs = opts.pollMs ?? 1000;
    // Only a job becoming queued (enqueued, or queued again after a failure) makes one claimable.
    this.#listening ??= this.onChange((change) => {
      if (change === undefined || change.state === 'queued') this.#events.emit('enqueued', change?.queue);
    });
    await this.#listening;
    while (!opts.signal?.aborted) {
      // Listening before claiming: a job enqueued between the claim and the wait still wakes it.
      let woken = false;
      const early = (q: string | undefined) => {
        if (q === undefined || q === queue) woken = true;
      };
      this.#events.on('enqueued', early);
      const job = await this.claim(queue, workerId, leaseMs).finally(() => this.#events.off('enqueued', early));
      if (job) return job;
      if (woken) continue;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#events.off('enqueued', onEnqueued);
          opts.signal?.removeEventListener('abort', done);
          resolve();
        };
        const onEnqueued = (q: string | undefined) => {
          if (q === undefined || q === queue) done();
        };
        const timer = setTimeout(done, pollMs);
        this.#events.on('enqueued', onEnqueued);
        opts.signal?.addEventListener('abort', done, { once: true });
      });
    }
    return undefined;
  }

  /** Extends the lease (and records progress). False if the lease was lost: the worker must stop. */
  async heartbeat(jobId: number, workerId: string, leaseMs: number, progress?: unknown): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE jobs SET lease_until = now() + $3::float8 * interval '1 millisecond', progress = coalesce($4::jsonb, progress), updated_at = now()
       WHERE id = $1 AND locked_by = $2 AND state = 'running' RETURNING id`,
      [jobId, workerId, ms(leaseMs), json(progress)],
    );
    return rows.length > 0;
  }

  /** Marks the job done. False if the lease was lost (another worker has it, or it was failed). */
  async complete(jobId: number, workerId: string, result?: unknown): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE jobs SET state = 'done', result = $3::jsonb, lease_until = NULL, updated_at = now()
       WHERE id = $1 AND locked_by = $2 AND state = 'running' RETURNING id`,
      [jobId, workerId, json(result)],
    );
    return rows.length > 0;
  }

  /**
   * Records a failed attempt: the job is queued again after `retryAfterMs` unless it has used its
   * attempts (or `permanent`), then it is failed. Returns the new state, or 'lost' if the lease was lost.
   */
  async fail(
    jobId: number,
    workerId: string,
    error: string | Error,
    opts: { retryAfterMs?: number; permanent?: boolean } = {},
  ): Promise<'queued' | 'failed' | 'lost'> {
    const message = (error instanceof Error ? error.message : String(error)).slice(0, 4000);
    const [row] = await this.db.query<{ state: 'queued' | 'failed' }>(
      `UPDATE jobs SET
         state = CASE WHEN $5::boolean OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
         run_after = CASE WHEN $5::boolean OR attempts >= max_attempts THEN run_after ELSE now() + $4::float8 * interval '1 millisecond' END,
         last_error = $3, lease_until = NULL, updated_at = now()
       WHERE id = $1 AND locked_by = $2 AND state = 'running' RETURNING state`,
      [jobId, workerId, message, ms(opts.retryAfterMs ?? 0), opts.permanent ?? false],
    );
    return row ? row.state : 'lost';
  }

  async get(jobId: number): Promise<JobOf<M> | undefined> {
    const [row] = await this.db.query<JobRow>('SELECT * FROM jobs WHERE id = $1', [jobId]);
    return row && jobFromRow<M>(row);
  }

  /** Jobs whose payload has `field` equal to `value` (e.g. a run's transfers by runId), oldest first. */
  async listByPayload(field: string, value: string): Promise<JobOf<M>[]> {
    const rows = await this.db.query<JobRow>('SELECT * FROM jobs WHERE payload->>$1 = $2 ORDER BY id', [field, value]);
    return rows.map((r) => jobFromRow<M>(r));
  }

  async list(opts: { queue?: string; state?: JobState; limit?: number } = {}): Promise<JobOf<M>[]> {
    const rows = await this.db.query<JobRow>(
      `SELECT * FROM jobs WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR state = $2) ORDER BY id DESC LIMIT $3`,
      [opts.queue ?? null, opts.state ?? null, opts.limit ?? 100],
    );
    return rows.map((r) => jobFromRow<M>(r));
  }

  /**
   * Unfinished jobs per queue whose name starts with `queuePrefix` (e.g. `transfer:`), for the
   * proxy launcher: a region with work gets a proxy, an idle one loses it. Queues without
   * unfinished jobs are absent.
   */
  async depth(queuePrefix = ''): Promise<Record<string, QueueDepth>> {
    const rows = await this.db.query<{ queue: string; queued: number; ready: number; running: number }>(
      `SELECT queue,
              count(*) FILTER (WHERE state = 'queued')::int AS queued,
              count(*) FILTER (WHERE state = 'queued' AND run_after <= now())::int AS ready,
              count(*) FILTER (WHERE state = 'running')::int AS running
       FROM jobs WHERE state IN ('queued', 'running') AND left(queue, length($1)) = $1
       GROUP BY queue ORDER BY queue`,
      [queuePrefix],
    );
    const out: Record<string, QueueDepth> = {};
    for (const r of rows)
      out[r.queue] = { queued: Number(r.queued), ready: Number(r.ready), running: Number(r.running) };
    return out;
  }
}
