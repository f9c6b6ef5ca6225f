import type { Queryable } from './database.ts';

/** One change made through the API: who (token name and role), what, when, from where. */
export interface AuditEntry {
  id: string;
  at: string;
  actor: string | null;
  actorRole: string | null;
  tokenId: string | null;
  /** `METHOD /route/:param`, e.g. `PATCH /api/policies/:id`. */
  action: string;
  /** The object changed, from the path (a policy name, a token id…), when there is one. */
  target: string | null;
  /** The request body with secrets removed. */
  details: Record<string, unknown>;
  status: number;
  ip: string | null;
  /** What sent it: `cli`, `console` or the client's user agent. */
  via: string | null;
}

export type NewAuditEntry = Omit<AuditEntry, 'id' | 'at'>;

export interface AuditQuery {
  /** Who: the token name, exactly (`admin`, `oidc:alice`). */
  actor?: string;
  /** Text in the action (`PATCH`, `/api/policies`, `SIGN-IN`). */
  action?: string;
  /** Text in the actor, action, target or client address. */
  q?: string;
  /** `ok` (2xx, 3xx) or `refused` (4xx, 5xx). */
  outcome?: 'ok' | 'refused';
  since?: string;
  until?: string;
  limit?: number;
  offset?: number;
}

/** Field names whose values never reach the audit log. */
const SECRET_FIELD = /token|secret|password|passphrase|credential|key$/i;

/** A copy of `value` with every secret-looking field replaced by "***". */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, SECRET_FIELD.test(k) ? '***' : redactSecrets(v)]),
    );
  }
  return value;
}

/** The audit log in the catalog: append-only, newest first when read. */
export class AuditLog {
  readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  async record(e: NewAuditEntry): Promise<void> {
    await this.db.query(
      `INSERT INTO audit_log (actor, actor_role, token_id, action, target, details, status, ip, via)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        e.actor,
        e.actorRole,
        e.tokenId,
        e.action,
        e.target,
        JSON.stringify(redactSecrets(e.details) ?? {}),
        e.status,
        e.ip,
        e.via,
      ],
    );
  }

  /** Newest first, with the number of entries that match in all. */
  async list(q: AuditQuery = {}): Promise<{ entries: AuditEntry[]; total: number }> {
    const where = `WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action ILIKE '%' || $2 || '%')
      AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
      AND ($5::text IS NULL OR actor ILIKE '%' || $5 || '%' OR action ILIKE '%' || $5 || '%'
           OR target ILIKE '%' || $5 || '%' OR ip ILIKE '%' || $5 || '%')
      AND ($6::text IS NULL OR ($6 = 'ok') = (status < 400))`;
    const params = [
      q.actor ?? null,
      q.action ?? null,
      q.since ?? null,
      q.until ?? null,
      q.q ?? null,
      q.outcome ?? null,
    ];
    const rows = await this.db.query<AuditRow>(
      `SELECT * FROM audit_log ${where} ORDER BY at DESC, id DESC LIMIT $7 OFFSET $8`,
      [...params, q.limit ?? 100, q.offset ?? 0],
    );
    const [count] = await this.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_log ${where}`, params);
    return { entries: rows.map(fromRow), total: Number(count?.n ?? 0) };
  }
}

interface AuditRow {
  id: string | number;
  at: Date | string;
  actor: string | null;
  actor_role: string | null;
  token_id: string | null;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
  status: number;
  ip: string | null;
  via: string | null;
}

function fromRow(r: AuditRow): AuditEntry {
  return {
    id: String(r.id),
    at: new Date(r.at).toISOString(),
    actor: r.actor,
    actorRole: r.actor_role,
    tokenId: r.token_id,
    action: r.action,
    target: r.target,
    details: r.details,
    status: Number(r.status),
    ip: r.ip,
    via: r.via,
  };
}
