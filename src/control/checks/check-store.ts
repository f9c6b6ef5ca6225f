import type { Queryable } from '../catalog/database.ts';
import type { CheckReport } from '../../repository/check.ts';

/** One repository check the server ran, and what it found. */
export interface RepositoryCheck {
  id: string;
  /** The schedule occurrence it ran for; null when started by hand (POST /api/checks). */
  scheduledFor: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** `none` (metadata only), or the share of packs read and re-hashed, e.g. `10%`. */
  readData: string;
  state: 'running' | 'passed' | 'failed';
  errors: string[];
  warnings: string[];
  advice: string[];
  packs: number;
  chunks: number;
  recoveryPoints: number;
  bytesRead: number;
  /** Which server process ran it. */
  server: string | null;
}

export interface CheckQuery {
  state?: 'running' | 'passed' | 'failed';
  since?: string;
  until?: string;
  limit?: number;
  offset?: number;
}

/** Repository checks in the catalog (table repository_checks). */
export class CheckStore {
  readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /**
   * Records that a check starts. For a schedule occurrence, only the first server to claim it gets
   * a row (undefined for the others): each occurrence is checked once however many servers run.
   */
  async begin(scheduledFor: Date | null, readData: string, server: string): Promise<RepositoryCheck | undefined> {
    const [row] = await this.db.query<CheckRow>(
      `INSERT INTO repository_checks (scheduled_for, read_data, server) VALUES ($1, $2, $3)
       ON CONFLICT (scheduled_for) DO NOTHING RETURNING *`,
      [scheduledFor?.toISOString() ?? null, readData, server],
    );
    return row && fromRow(row);
  }

  async finish(id: string, report: CheckReport): Promise<RepositoryCheck> {
    const [row] = await this.db.query<CheckRow>(
      `UPDATE repository_checks SET finished_at = now(), state = $2, errors = $3, warnings = $4, advice = $5,
         packs = $6, chunks = $7, recovery_points = $8, bytes_read = $9 WHERE id = $1 RETURNING *`,
      [
        id,
        report.errors.length ? 'failed' : 'passed',
        JSON.stringify(report.errors),
        JSON.stringify(report.warnings),
        JSON.stringify(report.advice),
        report.packs,
        report.chunks,
        report.recoveryPoints,
        report.bytesRead,
      ],
    );
    return fromRow(row!);
  }

  async get(id: string): Promise<RepositoryCheck | undefined> {
    if (!/^\d{1,15}$/.test(id)) return undefined;
    const [row] = await this.db.query<CheckRow>('SELECT * FROM repository_checks WHERE id = $1', [id]);
    return row && fromRow(row);
  }

  /** Newest first, with the number that match in all. */
  async list(q: CheckQuery = {}): Promise<{ checks: RepositoryCheck[]; total: number }> {
    const where = `WHERE ($1::text IS NULL OR state = $1) AND ($2::timestamptz IS NULL OR started_at >= $2)
      AND ($3::timestamptz IS NULL OR started_at < $3)`;
    const params = [q.state ?? null, q.since ?? null, q.until ?? null];
    const rows = await this.db.query<CheckRow>(
      `SELECT * FROM repository_checks ${where} ORDER BY started_at DESC, id DESC LIMIT $4 OFFSET $5`,
      [...params, q.limit ?? 100, q.offset ?? 0],
    );
    const [count] = await this.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM repository_checks ${where}`,
      params,
    );
    return { checks: rows.map(fromRow), total: Number(count?.n ?? 0) };
  }
}

interface CheckRow {
  id: string | number;
  scheduled_for: Date | string | null;
  started_at: Date | string;
  finished_at: Date | string | null;
  read_data: string;
  state: RepositoryCheck['state'];
  errors: string[];
  warnings: string[];
  advice: string[];
  packs: number;
  chunks: number;
  recovery_points: number;
  bytes_read: number | string;
  server: string | null;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

function fromRow(r: CheckRow): RepositoryCheck {
  return {
    id: String(r.id),
    scheduledFor: iso(r.scheduled_for),
    startedAt: new Date(r.started_at).toISOString(),
    finishedAt: iso(r.finished_at),
    readData: r.read_data,
    state: r.state,
    errors: r.errors,
    warnings: r.warnings,
    advice: r.advice,
    packs: Number(r.packs),
    chunks: Number(r.chunks),
    recoveryPoints: Number(r.recovery_points),
    bytesRead: Number(r.bytes_read),
    server: r.server,
  };
}
