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
  /**
   * Calls `fn` with the payload of every NOTIFY on `channel`, from any process on this catalog
   * (PostgreSQL: a dedicated LISTEN connection; PGlite: its own listen, one process). After the
   * LISTEN connection was lost and made again, `fn` gets `undefined`: notifications may have been
   * missed meanwhile, so look at everything. Returns a function that stops listening.
   */
  listen(channel: string, fn: (payload: string | undefined) => void): Promise<() => Promise<void>>;
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
  const listener = new PgListener(url);
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
    listen(channel, fn) {
      return listener.listen(channel, fn);
    },
    async close() {
      await listener.close();
      await pool.end();
    },
  };
}

/**
 * One LISTEN connection per process, outside the pool (a pooled client would be handed out for
 * queries). When it drops it is made again with a doubling wait, and every listener is told
 * (`undefined`) that it may have missed notifications.
 */
class PgListener {
  readonly #url: string;
  readonly #handlers = new Map<string, Set<(payload: string | undefined) => void>>();
  #client: Promise<pg.Client> | undefined;
  #closed = false;
  #retryMs = 250;
  #retry: NodeJS.Timeout | undefined;

  constructor(url: string) {
    this.#url = url;
  }

  async listen(channel: string, fn: (payload: string | undefined) => void): Promise<() => Promise<void>> {
    let set = this.#handlers.get(channel);
    const first = !set;
    if (!set) this.#handlers.set(channel, (set = new Set()));
    set.add(fn);
    const client = await (this.#client ??= this.#connect());
    if (first) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    return async () => {
      set.delete(fn);
    };
  }

  async #connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.#url });
    client.on('notification', (n) => {
      for (const fn of this.#handlers.get(n.channel) ?? []) fn(n.payload ?? '');
    });
    const lost = () => {
      if (this.#closed || this.#client === undefined) return;
      this.#client = undefined;
      client.end().catch(() => {});
      this.#reconnectLater();
    };
    client.on('error', lost);
    client.on('end', lost);
    await client.connect();
    return client;
  }

  async #reconnect(): Promise<void> {
    if (this.#closed) return;
    try {
      const client = await (this.#client ??= this.#connect());
      for (const channel of this.#handlers.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      this.#retryMs = 250;
      for (const set of this.#handlers.values()) for (const fn of set) fn(undefined);
    } catch {
      this.#client = undefined;
      this.#reconnectLater();
    }
  }

  /** The next try, after a wait that doubles up to 30 s (back to 250 ms once connected). */
  #reconnectLater(): void {
    this.#retry = setTimeout(() => void this.#reconnect(), this.#retryMs);
    this.#retry.unref();
    this.#retryMs = Math.min(30_000, this.#retryMs * 2);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    const client = this.#client;
    this.#client = undefined;
    if (client) await (await client.catch(() => undefined))?.end().catch(() => {});
  }
}

/**
 * initdb leaves PostgreSQL's shared_buffers at 128 MB, sized for a server that caches a large
 * database for many connections. PGlite zeroes all of it in WebAssembly at every open: 0.5 s of CPU
 * and about 100 MiB of resident memory for a catalog that is 35 MiB at 1,000 VMs, WAL included. Pages
 * that do not fit are read again from the data folder's files, which the OS caches.
 */
const PGLITE_SETTINGS = ['-c', 'shared_buffers=32MB'];

async function openPGlite(dir: string): Promise<Database> {
  await mkdir(dir, { recursive: true });
  const db = await PGlite.create(dir, { startParams: [...PGlite.defaultStartParams, ...PGLITE_SETTINGS] });
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
    listen(channel, fn) {
      // PGlite delivers NOTIFY (from triggers too) to listeners of the same instance, which is the
      // only one on its data folder: every writer of this catalog is in this process.
      return exclusive(async () => {
        const unlisten = await db.listen(channel, (payload) => fn(payload));
        return () =>
          exclusive(async () => {
            if (!closed) await unlisten();
          });
      });
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
