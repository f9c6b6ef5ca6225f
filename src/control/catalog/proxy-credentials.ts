import { randomUUID } from 'node:crypto';
import { hashToken, newToken } from '../api/auth.ts';
import type { Queryable } from './database.ts';
import { InvalidInputError } from './errors.ts';

/** A credential a data proxy presents to the server: valid for one region's work only. */
export interface ProxyCredential {
  id: string;
  name: string;
  region: string;
  /** `admin` (made through the API for a proxy run by hand) or `launcher:<server>` (made for a proxy a server started). */
  issuedBy: string;
  createdAt: string;
  revokedAt?: string;
}

/** Region names as clouds spell them: lower-case letters and digits (westeurope, eastus2). */
const REGION = /^[a-z][a-z0-9]{1,39}$/;

/**
 * Per-region proxy credentials, stored as their SHA-256 only (like API tokens). A revoked
 * credential stops working at the proxy's next call; its row stays, with the revocation time.
 */
export class ProxyCredentialStore {
  readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /** Makes a credential for `region`; the secret is returned only here. */
  async create(
    region: string,
    name: string,
    issuedBy: string,
  ): Promise<{ token: string; credential: ProxyCredential }> {
    if (typeof region !== 'string' || !REGION.test(region))
      throw new InvalidInputError(
        'region',
        `must be a region name such as westeurope (lower-case letters and digits), not ${JSON.stringify(region)}`,
      );
    if (typeof name !== 'string' || !name.trim()) throw new InvalidInputError('name', 'must be a non-empty string');
    const token = `gsp_${newToken().slice(3)}`;
    const [row] = await this.db.query<Row>(
      `INSERT INTO proxy_credentials (id, name, region, token_hash, issued_by) VALUES ($1, $2, $3, $4, $5) RETURNING ${COLUMNS}`,
      [randomUUID(), name.trim(), region, hashToken(token), issuedBy],
    );
    return { token, credential: fromRow(row!) };
  }

  /** The credential a token belongs to, if it is valid and not revoked. Looked up by hash. */
  async verify(token: string): Promise<ProxyCredential | undefined> {
    if (typeof token !== 'string' || !token) return undefined;
    const [row] = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM proxy_credentials WHERE token_hash = $1 AND revoked_at IS NULL`,
      [hashToken(token)],
    );
    return row && fromRow(row);
  }

  async list(opts: { includeRevoked?: boolean } = {}): Promise<ProxyCredential[]> {
    const where = opts.includeRevoked ? '' : 'WHERE revoked_at IS NULL';
    return (await this.db.query<Row>(`SELECT ${COLUMNS} FROM proxy_credentials ${where} ORDER BY created_at, id`)).map(
      fromRow,
    );
  }

  /** Revokes by id or unique id prefix; returns the credential, or undefined if none matched. */
  async revoke(idOrPrefix: string): Promise<ProxyCredential | undefined> {
    const matches = await this.db.query<{ id: string }>(
      'SELECT id FROM proxy_credentials WHERE id LIKE $1 ORDER BY id',
      [`${idOrPrefix.toLowerCase().replace(/[%_\\]/g, '')}%`],
    );
    if (matches.length > 1 && !matches.some((m) => m.id === idOrPrefix))
      throw new InvalidInputError('id', `${idOrPrefix} matches ${matches.length} credentials: give more characters`);
    const id = matches.find((m) => m.id === idOrPrefix)?.id ?? matches[0]?.id;
    if (!id) return undefined;
    const [row] = await this.db.query<Row>(
      `UPDATE proxy_credentials SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`,
      [id],
    );
    return row && fromRow(row);
  }

  /** Revokes every live credential an issuer made (a launcher's proxies, after its server died). */
  async revokeIssuedBy(issuedBy: string): Promise<number> {
    return (
      await this.db.query(
        'UPDATE proxy_credentials SET revoked_at = now() WHERE issued_by = $1 AND revoked_at IS NULL RETURNING id',
        [issuedBy],
      )
    ).length;
  }

  /** Issuers of live credentials whose name starts with `prefix` (to find launchers of dead servers). */
  async liveIssuers(prefix: string): Promise<string[]> {
    const rows = await this.db.query<{ issued_by: string }>(
      'SELECT DISTINCT issued_by FROM proxy_credentials WHERE revoked_at IS NULL AND starts_with(issued_by, $1)',
      [prefix],
    );
    return rows.map((r) => r.issued_by);
  }
}

const COLUMNS = 'id, name, region, issued_by, created_at, revoked_at';
interface Row {
  id: string;
  name: string;
  region: string;
  issued_by: string;
  created_at: Date | string;
  revoked_at: Date | string | null;
}

function fromRow(r: Row): ProxyCredential {
  return {
    id: r.id,
    name: r.name,
    region: r.region,
    issuedBy: r.issued_by,
    createdAt: new Date(r.created_at).toISOString(),
    ...(r.revoked_at ? { revokedAt: new Date(r.revoked_at).toISOString() } : {}),
  };
}
