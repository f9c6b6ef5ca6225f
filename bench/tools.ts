/**
 * The three backup tools the bench compares, behind one shape: make a repository, back up one
 * image file, restore it, say how big the repository is. Each backs up the same path (`disk.img`
 * in the source folder) with encryption and zstd level 3 where the tool offers it:
 * - goldsnap `repo backup-image` (fixed chunks, given the changed ranges for an incremental);
 * - restic 0.14 (content-defined chunks, repository format 2 with its default compression);
 * - borg 1.2 (content-defined chunks, `repokey` encryption: AES-CTR + HMAC-SHA-256, zstd,3).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dirBytes, type Measure, measure } from './measure.ts';

export type ToolName = 'goldsnap' | 'restic' | 'borg';
export const TOOLS: ToolName[] = ['goldsnap', 'restic', 'borg'];

export interface BackupResult extends Measure {
  id: string;
  /** The tool's own account of the backup, without process start-up, when it gives one. */
  inToolSeconds: number;
  /** goldsnap only: bytes read from the image, and its chunk counts. */
  readBytes?: number;
}

export interface Tool {
  name: ToolName;
  /** A label for logs and tables, e.g. "goldsnap 256 KiB". */
  label: string;
  repo: string;
  init(): void;
  /** Backs up `disk.img` in `sourceDir`; goldsnap takes the parent and the changed ranges. */
  backup(sourceDir: string, what: string, incremental?: { parent: string; rangesFile: string }): BackupResult;
  /** Restores point `id` to `target` (a file path). */
  restore(id: string, target: string): Measure;
  size(): number;
  remove(): void;
}

const PASSPHRASE = 'bench-passphrase';

export interface ToolContext {
  root: string;
  work: string;
}

export function makeTool(name: ToolName, dir: string, ctx: ToolContext, chunkSize?: number): Tool {
  mkdirSync(dir, { recursive: true });
  const timeFile = join(dir, 'time.txt');
  if (name === 'goldsnap') return goldsnap(dir, ctx, timeFile, chunkSize);
  if (name === 'restic') return restic(dir, timeFile);
  return borg(dir, timeFile);
}

function goldsnap(dir: string, ctx: ToolContext, timeFile: string, chunkSize?: number): Tool {
  const repo = join(dir, 'goldsnap-repo');
  // bin/goldsnap, as a user runs it (it sets the compile cache and malloc's arenas).
  const goldsnapBin = join(ctx.root, 'bin', 'goldsnap');
  const env = { GOLDSNAP_PASSWORD: PASSPHRASE };
  const args = (a: string[]) => ['repo', ...a, '--repo', repo, '--json'];
  const label = chunkSize ? `goldsnap ${sizeLabel(chunkSize)}` : 'goldsnap';
  return {
    name: 'goldsnap',
    label,
    repo,
    init() {
      rmSync(repo, { recursive: true, force: true });
      const extra = chunkSize ? ['--chunk-size', String(chunkSize)] : [];
      execFileSync(goldsnapBin, args(['init', ...extra]), { env: { ...process.env, ...env }, stdio: 'ignore' });
    },
    backup(sourceDir, what, incremental) {
      const extra = incremental ? ['--parent', incremental.parent, '--changed', incremental.rangesFile] : [];
      const m = measure(
        `${label} ${what}`,
        goldsnapBin,
        args(['backup-image', join(sourceDir, 'disk.img'), '--name', 'disk.img', '--source', 'bench', ...extra]),
        { env, cwd: dir, timeFile },
      );
      const out = JSON.parse(m.stdout);
      return { ...m, id: out.snapshot, inToolSeconds: out.seconds, readBytes: out.stats.readBytes };
    },
    restore(id, target) {
      return measure(`${label} restore`, goldsnapBin, args(['restore-image', id, target]), { env, cwd: dir, timeFile });
    },
    size: () => dirBytes(repo),
    remove: () => rmSync(repo, { recursive: true, force: true }),
  };
}

function restic(dir: string, timeFile: string): Tool {
  const repo = join(dir, 'restic-repo');
  const env = { RESTIC_PASSWORD: PASSPHRASE, RESTIC_REPOSITORY: repo, RESTIC_CACHE_DIR: join(dir, 'restic-cache') };
  return {
    name: 'restic',
    label: 'restic',
    repo,
    init() {
      rmSync(repo, { recursive: true, force: true });
      rmSync(env.RESTIC_CACHE_DIR, { recursive: true, force: true });
      execFileSync('restic', ['init', '--repository-version', '2'], {
        env: { ...process.env, ...env },
        stdio: 'ignore',
      });
    },
    backup(sourceDir, what) {
      const m = measure(`restic ${what}`, 'restic', ['backup', '--json', '--host', 'bench', 'disk.img'], {
        env,
        cwd: sourceDir,
        timeFile,
      });
      const summary = m.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line))
        .find((msg) => msg.message_type === 'summary');
      return { ...m, id: summary.snapshot_id ?? 'latest', inToolSeconds: summary.total_duration };
    },
    restore(id, target) {
      const into = `${target}.d`;
      const m = measure('restic restore', 'restic', ['restore', id, '--target', into], { env, cwd: dir, timeFile });
      execFileSync('mv', [join(into, 'disk.img'), target]);
      rmSync(into, { recursive: true });
      return m;
    },
    size: () => dirBytes(repo),
    remove() {
      rmSync(repo, { recursive: true, force: true });
      rmSync(env.RESTIC_CACHE_DIR, { recursive: true, force: true });
    },
  };
}

function borg(dir: string, timeFile: string): Tool {
  const repo = join(dir, 'borg-repo');
  const base = join(dir, 'borg-base');
  const env = { BORG_PASSPHRASE: PASSPHRASE, BORG_BASE_DIR: base, BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
  let archives = 0;
  return {
    name: 'borg',
    label: 'borg',
    repo,
    init() {
      rmSync(repo, { recursive: true, force: true });
      rmSync(base, { recursive: true, force: true });
      execFileSync('borg', ['init', '--encryption', 'repokey', repo], {
        env: { ...process.env, ...env },
        stdio: 'ignore',
      });
    },
    backup(sourceDir, what) {
      const name = `a${++archives}`;
      const m = measure(
        `borg ${what}`,
        'borg',
        ['create', '--json', '--compression', 'zstd,3', `${repo}::${name}`, 'disk.img'],
        { env, cwd: sourceDir, timeFile },
      );
      return { ...m, id: name, inToolSeconds: JSON.parse(m.stdout).archive.duration };
    },
    restore(id, target) {
      const into = `${target}.d`;
      mkdirSync(into, { recursive: true });
      const m = measure('borg restore', 'borg', ['extract', '--sparse', `${repo}::${id}`], {
        env,
        cwd: into,
        timeFile,
      });
      const [file] = readdirSync(into);
      execFileSync('mv', [join(into, file), target]);
      rmSync(into, { recursive: true });
      return m;
    },
    size: () => dirBytes(repo),
    remove() {
      rmSync(repo, { recursive: true, force: true });
      rmSync(base, { recursive: true, force: true });
    },
  };
}

export function sizeLabel(bytes: number): string {
  return bytes >= 1024 ** 2 ? `${bytes / 1024 ** 2} MiB` : `${bytes / 1024} KiB`;
}
