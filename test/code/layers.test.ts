import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';

/**
 * Imports point down the layers, never up: a layer knows nothing of the ones above it.
 * Bottom to top: util → repository → dataplane → files (file-level restore) → cloud → control → cli. The emulator is a separate
 * program beside them: it may use util only, and only named entry points of it may be used by others
 * (the server embeds it for the demo, the cloud adapter reads its connection file, the CLI runs it).
 */
const order = ['util', 'repository', 'dataplane', 'files', 'cloud', 'control', 'cli'];
const emulatorEntryPoints: Record<string, string[]> = {
  cloud: ['emulator/client.ts'],
  control: ['emulator/emulator.ts', 'emulator/client.ts'],
  cli: ['emulator/main.ts', 'emulator/faults.ts'],
};

const src = path.join(import.meta.dirname, '..', '..', 'src');

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sourceFiles(full)));
    else if (/\.(ts|tsx)$/.test(entry.name)) out.push(full);
  }
  return out;
}

/** Relative module specifiers of static imports, `export … from` and dynamic `import()`. */
function relativeImports(code: string): string[] {
  const found: string[] = [];
  for (const m of code.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g))
    found.push(m[1]);
  return found;
}

function upwardImport(fromFile: string, spec: string): string | undefined {
  const fromRel = path.relative(src, fromFile);
  const targetRel = path.relative(src, path.resolve(path.dirname(fromFile), spec));
  const from = fromRel.split(path.sep)[0];
  const to = targetRel.split(path.sep)[0];
  if (from === to || to.startsWith('..')) return undefined;
  if (from === 'emulator') return to === 'util' ? undefined : `the emulator imports ${targetRel}`;
  if (to === 'emulator') {
    const allowed = emulatorEntryPoints[from] ?? [];
    return allowed.includes(targetRel.split(path.sep).join('/'))
      ? undefined
      : `${from} imports the emulator's ${targetRel}`;
  }
  const a = order.indexOf(from);
  const b = order.indexOf(to);
  if (a < 0 || b < 0) return `${fromRel} imports ${targetRel}: add its layer to test/code/layers.test.ts`;
  return b > a ? `${from} (layer ${a}) imports ${to} (layer ${b}): ${targetRel}` : undefined;
}

test('every import in src points down the layers', async () => {
  const problems: string[] = [];
  for (const file of await sourceFiles(src)) {
    for (const spec of relativeImports(await readFile(file, 'utf8'))) {
      const problem = upwardImport(file, spec);
      if (problem) problems.push(`${path.relative(src, file)}: ${problem}`);
    }
  }
  assert.deepEqual(problems, []);
});

test('the layer check catches an upward import', () => {
  const repositoryFile = path.join(src, 'repository', 'check.ts');
  assert.match(upwardImport(repositoryFile, '../control/api/api.ts') ?? '', /repository \(layer 1\) imports control/);
  assert.equal(upwardImport(path.join(src, 'control', 'api', 'api.ts'), '../../repository/repository.ts'), undefined);
  assert.match(upwardImport(path.join(src, 'emulator', 'core.ts'), '../cloud/azure.ts') ?? '', /emulator imports/);
});
