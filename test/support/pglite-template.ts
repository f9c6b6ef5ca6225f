import { cp, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';

const root = resolve(import.meta.dirname, '..', '..');

/**
 * Puts an initialized, empty PGlite data folder at `catalogDir`, where `goldsnap server` keeps its
 * embedded catalog. PGlite's initdb costs seconds of CPU, paid by every test server that starts on
 * an empty data folder; the folder it makes is the same every time, so it is made once per PGlite
 * version on this machine and copied. The server then runs its migrations on it as on any catalog.
 */
export async function seedPGliteCatalog(catalogDir: string): Promise<void> {
  const template = join(tmpdir(), `goldsnap-test-pglite-${await pgliteVersion()}`);
  if (!(await exists(join(template, 'PG_VERSION')))) {
    // Made aside and renamed into place, so that test files starting together never see half a
    // folder; a loser of that race throws its own copy away.
    const fresh = await mkdtemp(join(tmpdir(), 'goldsnap-test-pglite-new-'));
    const db = await PGlite.create(fresh);
    await db.close();
    await rename(fresh, template).catch(() => rm(fresh, { recursive: true, force: true }));
  }
  await cp(template, catalogDir, { recursive: true });
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
