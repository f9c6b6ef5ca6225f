import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { migrations } from '../../src/control/catalog/migrations.ts';

const root = resolve(import.meta.dirname, '..', '..');

/**
 * Puts an initialized PGlite data folder at `catalogDir`, where `goldsnap server` keeps its
 * embedded catalog. PGlite's initdb costs seconds of CPU, and running the catalog's migrations on
 * it about as much again, paid by every test server that starts on an empty data folder; the
 * folder they make is the same every time, so it is made once per PGlite version (and, migrated,
 * once per migration list) on this machine and copied.
 *
 * `migrated: true` (the default) gives a catalog with every migration applied, as a server leaves
 * it after its first start: the server's own `migrate` then finds nothing to do. The suites that
 * test migrating itself (test/control/catalog.test.ts) ask for `migrated: false`.
 */
export async function seedPGliteCatalog(catalogDir: string, opts: { migrated?: boolean } = {}): Promise<void> {
  const migrated = opts.migrated ?? true;
  const version = await pgliteVersion();
  const template = migrated
    ? await madeOnce(`goldsnap-test-pglite-${version}-migrated-${migrationsHash()}`, async (dir) => {
        const initialized = await madeOnce(`goldsnap-test-pglite-${version}`, makeInitialized);
        const dataDir = await mkdtemp(join(tmpdir(), 'goldsnap-test-pglite-migrating-'));
        try {
          await cp(initialized, join(dataDir, 'catalog'), { recursive: true });
          // Imported only here: the test files that copy a template made earlier need no PGlite.
          const { openDatabase } = await import('../../src/control/catalog/database.ts');
          const { migrate } = await import('../../src/control/catalog/migrations.ts');
          const db = await openDatabase({ dataDir });
          await migrate(db);
          await db.close();
          await cp(join(dataDir, 'catalog'), dir, { recursive: true });
        } finally {
          await rm(dataDir, { recursive: true, force: true });
        }
      })
    : await madeOnce(`goldsnap-test-pglite-${version}`, makeInitialized);
  await cp(template, catalogDir, { recursive: true });
}

async function makeInitialized(dir: string): Promise<void> {
  const { PGlite } = await import('@electric-sql/pglite');
  const db = await PGlite.create(dir);
  await db.close();
}

/**
 * The folder `name` in the temp folder, made by `make` if it is not there yet. It is made aside and
 * renamed into place, so that test files starting together never see half a folder; a loser of
 * that race throws its own copy away.
 */
async function madeOnce(name: string, make: (dir: string) => Promise<void>): Promise<string> {
  const path = join(tmpdir(), name);
  if (await exists(join(path, 'PG_VERSION'))) return path;
  const fresh = await mkdtemp(join(tmpdir(), 'goldsnap-test-pglite-new-'));
  await make(fresh);
  await rename(fresh, path).catch(() => rm(fresh, { recursive: true, force: true }));
  return path;
}

/** Names the migrated template after what is in it: a changed or added migration makes a new one. */
function migrationsHash(): string {
  return createHash('sha256').update(JSON.stringify(migrations)).digest('hex').slice(0, 16);
}

async function pgliteVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(root, 'node_modules/@electric-sql/pglite/package.json'), 'utf8'));
  return pkg.version;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
