import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Mutex } from '../../util/mutex.ts';
import pg from 'pg';
import { errorMessage } from '../../util/errors.ts';

/** Something SQL can be sent to: the database itself or a transaction. */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs a script of several statements, without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/**
 * The catalog and job queue database: a PostgreSQL server (`DATABASE_URL`) or, by default, an
 * embedded PGlite in the data folder. Both speak the same SQL; code above this never knows which.
 *
 * PGlite is a single connection, so every query and transaction on it is serialized here: a plain
 * query never slips into someone else's open transaction. Consequence: inside `transaction(fn)`,
 * use `tx`, never `db` (on PGlite, `db.query` inside `fn` would wait for `fn` forever).
 */
export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** postgres://user:password@host:port/db — a PostgreSQL server. */
  databaseUrl?: string;
  /** Data folder; the embedded catalog lives in `<dataDir>/catalog`. */
  dataDir?: string;
  /** Pool size for PostgreSQL (default 10). */
  maxConnections?: number;
}

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  if (opts.databaseUrl) return openPostgres(opts.databaseUrl, opts.maxConnections ?? 10);
  if (!opts.dataDir) throw new Error('openDatabase needs either a databaseUrl or a dataDir');
  return openPGlite(join(opts.dataDir, 'catalog'));
}

/** The URL with its password replaced by `***`, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
  }
}

async function openPostgres(url: string, max: number): Promise<Database> {
  const pool = new pg.Pool({ connectionString: url, max });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  try {
    const client = await pool.connect();
    client.release();
  } catch (err) {
    await pool.end().catch(() => {});
    // pg's messages do not contain the password, but say which server we tried without it.
    throw new Error(`cannot connect to PostgreSQL at ${redactUrl(url)}: ${errorMessage(err)}`);
  }
  return {
    kind: 'postgres',
    async query<T>(sql: string, params?: unknown[]) {
      return (await pool.query(sql, params)).rows as T[];
    },
    async exec(sql: string) {
      await pool.query(sql);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      let broken = false;
      try {
        await client.query('BEGIN');
        const tx: Queryable = {
          query: async <R>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as R[],
          exec: async (sql: string) => {
            await client.query(sql);
          },
        };
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true;
        }
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async close() {
      await pool.end();
    },
  };
}

async function openPGlite(dir: string): Promise<Database> {
  await mkdir(dir, { recursive: true });
  const db = await PGlite.create(dir);
  // One connection: every query and transaction runs one after the other.
  const mutex = new Mutex();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => mutex.run(fn);
  let closed = false;
  return {
    kind: 'pglite',
    query<T>(sql: string, params?: unknown[]) {
      return exclusive(async () => (await db.query<T>(sql, params)).rows);
    },
    exec(sql: string) {
      return exclusive(async () => {
        await db.exec(sql);
      });
    },
    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return exclusive(() =>
        db.transaction(async (t) =>
          fn({
            query: async <R>(sql: string, params?: unknown[]) => (await t.query<R>(sql, params)).rows,
            exec: async (sql: string) => {
              await t.exec(sql);
            },
          }),
        ),
      );
    },
    close() {
      return exclusive(async () => {
        if (closed) return;
        closed = true;
        await db.close();
      });
    },
  };
}

/** The SQLSTATE of a database error (both drivers set `code`), e.g. 23505 for a unique violation. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}
