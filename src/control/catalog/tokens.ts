import { randomUUID } from 'node:crypto';
import { Roles, hashToken, newToken, type Role } from '../api/auth.ts';
import type { Queryable } from './database.ts';
import { InvalidInputError } from './errors.ts';

export interface ApiToken {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
  /** Sign-in sessions end on their own; tokens made for automation do not. */
  expiresAt?: string;
}

/** API tokens, stored as their SHA-256 only (src/control/api/auth.ts). */
export class TokenStore {
  readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /** Creates a token; the secret is returned only here, never stored. */
  async create(name: string, role: Role, opts: { expiresAt?: Date } = {}): Promise<{ token: string; info: ApiToken }> {
    if (typeof name !== 'string' || !name.trim()) throw new InvalidInputError('name', 'must be a non-empty string');
    if (!(Roles as readonly string[]).includes(role))
      throw new InvalidInputError('role', `must be one of ${Roles.join(', ')}`);
    const token = newToken();
    const [row] = await this.db.query<TokenRow>(
      'INSERT INTO api_tokens (id, name, role, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id, name, role, created_at, expires_at',
      [randomUUID(), name.trim(), role, hashToken(token), opts.expiresAt?.toISOString() ?? null],
    );
    return { token, info: fromRow(row!) };
  }

  /** The token's identity if it is valid. The lookup is by hash, so timing reveals nothing of the secret. */
  async verify(token: string): Promise<ApiToken | undefined> {
    if (typeof token !== 'string' || !token) return undefined;
    const [row] = await this.db.query<TokenRow>(
      'SELECT id, name, role, created_at, expires_at FROM api_tokens WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > now())',
      [hashToken(token)],
    );
    return row && fromRow(row);
  }

  async list(): Promise<ApiToken[]> {
    return (
      await this.db.query<TokenRow>(
        'SELECT id, name, role, created_at, expires_at FROM api_tokens WHERE expires_at IS NULL OR expires_at > now() ORDER BY created_at, id',
      )
    ).map(fromRow);
  }

  async revoke(id: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM api_tokens WHERE id = $1 RETURNING id', [id])).length > 0;
  }

  async count(): Promise<number> {
    const [row] = await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_tokens');
    return Number(row?.n ?? 0);
  }
}

interface TokenRow {
  id: string;
  name: string;
  role: Role;
  created_at: Date | string;
  expires_at?: Date | string | null;
}

function fromRow(r: TokenRow): ApiToken {
  return {
    id: r.id,
    name: r.name,
    role: r.role,
    createdAt: new Date(r.created_at).toISOString(),
    ...(r.expires_at ? { expiresAt: new Date(r.expires_at).toISOString() } : {}),
  };
}
