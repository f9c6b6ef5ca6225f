import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe } from 'node:test';
import pg from 'pg';
import { openDatabase, type Database } from '../../src/control/catalog/database.ts';
import { migrate } from '../../src/control/catalog/migrations.ts';
import { errorMessage } from '../../src/util/errors.ts';
import { seedPGliteCatalog } from '../support/pglite-template.ts';

/**
 * Runs a suite against both catalog backends: embedded PGlite in a temp dir, and a real PostgreSQL
 * server (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test) in a fresh database
 * created for the file and dropped after it. If no server answers and DATABASE_URL is unset, the
 * PostgreSQL suite is skipped (said so in the output).
 */
export interface Backend {
  kind: 'pglite' | 'postgres';
  /** The migrated database, emptied before each test. */
  db: Database;
  /** Another connection to the same database (PGlite: the same one, it is single-connection). */
  openAnother(): Promise<Database>;
}

export const SERVER_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function pgAvailable(): Promise<boolean> {
  const c = new pg.Client({ connectionString: SERVER_URL, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.end();
    return true;
  } catch (err) {
    if (process.env.DATABASE_URL)
      throw new Error(`DATABASE_URL is set but the server does not answer: ${errorMessage(err)}`);
    return false;
  }
}

// Known before any suite is declared: suites must be declared synchronously.
/** Whether the PostgreSQL server answers (throws when DATABASE_URL is set and it does not). */
export const PG_UP = await pgAvailable();

/**
 * A fresh temp data folder whose `catalog` is an empty PGlite database: not migrated, or (`migrated`)
 * with every migration applied. Copied from the machine's templates (test/support/pglite-template.ts),
 * so initdb runs once per machine, not once per file. The caller removes the folder.
 */
export async function freshPGliteDataDir(opts: { migrated?: boolean } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'goldsnap-catalog-'));
  await seedPGliteCatalog(join(dir, 'catalog'), { migrated: opts.migrated ?? false });
  return dir;
}

const TABLES = ['schedule_fires', 'jobs', 'runs', 'golden', 'recovery_points', 'vms', 'policies', 'api_tokens'];

export function forEachBackend(name: string, fn: (b: Backend) => void, opts: { migrated?: boolean } = {}): void {
  const migrated = opts.migrated ?? true;

  describe(`${name} [pglite]`, () => {
    let dir = '';
    const b = { kind: 'pglite' } as Backend;
    before(async () => {
      dir = await freshPGliteDataDir({ migrated });
      b.db = await openDatabase({ dataDir: dir });
      b.openAnother = async () => b.db;
      if (migrated) await migrate(b.db);
    });
    beforeEach(async () => {
      if (migrated) await b.db.exec(`TRUNCATE ${TABLES.join(', ')} RESTART IDENTITY`);
    });
    after(async () => {
      await b.db?.close();
      await rm(dir, { recursive: true, force: true });
    });
    fn(b);
  });

  describe(`${name} [postgres]`, { skip: PG_UP ? false : `no PostgreSQL server at ${SERVER_URL}` }, () => {
    const dbName = `goldsnap_t_${randomBytes(6).toString('hex')}`;
    const url = new URL(SERVER_URL);
    url.pathname = `/${dbName}`;
    const others: Database[] = [];
    const b = { kind: 'postgres' } as Backend;
    before(async () => {
      const admin = new pg.Client({ connectionString: SERVER_URL });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${dbName}`);
      await admin.end();
      b.db = await openDatabase({ databaseUrl: url.toString() });
      b.openAnother = async () => {
        const db = await openDatabase({ databaseUrl: url.toString() });
        others.push(db);
        return db;
      };
      if (migrated) await migrate(b.db);
    });
    beforeEach(async () => {
      if (migrated) await b.db.exec(`TRUNCATE ${TABLES.join(', ')} RESTART IDENTITY`);
    });
    after(async () => {
      for (const db of others) await db.close().catch(() => {});
      await b.db?.close();
      const admin = new pg.Client({ connectionString: SERVER_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
    });
    fn(b);
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
