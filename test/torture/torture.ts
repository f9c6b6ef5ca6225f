/**
 * Torture: seeded trials of backup, restore, forget and prune against one repository per backend
 * (a folder, s3rver, Azurite), each trial's command killed with SIGKILL at a seeded instant or let
 * finish, often with a prune running beside it (also killed at times). After every trial the
 * repository must check without errors and hold every recovery point it acknowledged; restores
 * and a final pass restore points and compare them bit for bit with the images backed up.
 *
 *   npm run torture -- [--seed 7] [--trials 20] [--backends folder,s3rver,azurite] [--no-faults]
 *
 * On the object stores, the trials' commands go through a seeded proxy that answers 503, drops
 * connections (before the store acts, and after it did) and slows requests; checks and the final
 * restores go straight to the store.
 *
 * Prints trials run, kills, recovery points verified bit for bit and data lost (must be 0); exits
 * 1 when anything was lost or a check failed. `test/torture/torture.test.ts` runs a short pass.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { MiB, makeDiskImage, overwrite, prng, sha256File } from '../support/disk-images.ts';
import { finished, startGoldsnap, type CliResult } from '../support/goldsnap-cli.ts';
import { startAzurite, startS3rver } from '../support/object-stores.ts';
import { startFaultyProxy, type FaultCounts } from './faulty-proxy.ts';
import { errorMessage } from '../../src/util/errors.ts';

export type BackendName = 'folder' | 's3rver' | 'azurite';
export const ALL_BACKENDS: BackendName[] = ['folder', 's3rver', 'azurite'];

export interface TortureOptions {
  seed: number;
  /** Trials per backend. */
  trials: number;
  backends: BackendName[];
  /** Object stores: run the trials' commands through a proxy that answers 503, drops connections and is slow at times. */
  faults?: boolean;
  log?: (line: string) => void;
}

export interface TortureReport {
  backend: BackendName;
  trials: number;
  kills: number;
  /** Restores whose bytes were compared with the image backed up, and matched. */
  pointsVerified: number;
  /** Acknowledged recovery points gone or restoring wrong: must be 0. */
  dataLost: number;
  /** Anything else that must not happen (check errors, commands failing for no reason). */
  problems: string[];
  /** Commands that failed on the store's faults (after the SDK's retries): allowed, nothing may be lost. */
  faultFailures: number;
  faults?: FaultCounts;
}

interface Store {
  location: string;
  /** The same repository through a proxy that has bad days (object stores, with faults on). */
  faultyLocation?: string;
  faults?: FaultCounts;
  env: Record<string, string>;
  stop(): Promise<void>;
}

async function openStore(name: BackendName, work: string, faults: boolean, seed: number): Promise<Store> {
  if (name === 'folder') return { location: join(work, 'repo'), env: {}, stop: async () => {} };
  const store = name === 's3rver' ? await startS3rver() : await startAzurite();
  const location = `${store.location}/torture`;
  if (!faults) return { location, env: store.env, stop: () => store.stop() };
  const upstream = Number(/127\.0\.0\.1:(\d+)/.exec(location)![1]);
  const proxy = await startFaultyProxy(upstream, seed);
  return {
    location,
    env: store.env,
    faults: proxy.counts,
    faultyLocation: location.replace(`127.0.0.1:${upstream}`, `127.0.0.1:${proxy.port}`),
    stop: async () => {
      await proxy.stop();
      await store.stop();
    },
  };
}

/** A command that may be killed: resolves with its result, and whether we killed it. */
function launch(args: string[], env: Record<string, string>): { child: ChildProcess; done: Promise<CliResult> } {
  const child = startGoldsnap(args, env);
  return { child, done: finished(child) };
}

/** Kills `child` after `ms` unless it ended before; says whether it did kill. */
async function killAfter(child: ChildProcess, done: Promise<CliResult>, ms: number | undefined): Promise<boolean> {
  if (ms === undefined) return false;
  const ended = await Promise.race([done.then(() => true), sleep(ms).then(() => false)]);
  if (ended) return false;
  child.kill('SIGKILL');
  return true;
}

export async function runTorture(opts: TortureOptions): Promise<TortureReport[]> {
  const reports: TortureReport[] = [];
  for (const [i, backend] of opts.backends.entries())
    reports.push(
      await tortureBackend(backend, opts.seed * 1000 + i, opts.trials, opts.faults ?? false, opts.log ?? (() => {})),
    );
  return reports;
}

async function tortureBackend(
  backend: BackendName,
  seed: number,
  trials: number,
  faults: boolean,
  log: (line: string) => void,
): Promise<TortureReport> {
  const rand = prng(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(rand() * items.length)];
  const work = await mkdtemp(join(tmpdir(), `goldsnap-torture-${backend}-`));
  const store = await openStore(backend, work, faults, seed);
  const opLocation = store.faultyLocation ?? store.location;
  const report: TortureReport = {
    backend,
    trials: 0,
    kills: 0,
    pointsVerified: 0,
    dataLost: 0,
    problems: [],
    faultFailures: 0,
    faults: store.faults,
  };
  /** A command that failed unkilled: on a faulty store that may be the faults, else it is a problem. */
  const failed = (what: string, r: CliResult) => {
    if (store.faults) report.faultFailures++;
    else report.problems.push(`${what} failed (${backend}): ${lastLine(r.stderr)}`);
  };
  const cli = async (args: string[]) => await launch([...args, '--repo', store.location], store.env).done;
  const json = async (args: string[]) => {
    const r = await cli([...args, '--json']);
    if (r.code !== 0) throw new Error(`goldsnap ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  /** Acknowledged (or found committed) recovery points and the hash of the image they hold. */
  const model = new Map<string, { hash: string; source: string }>();
  const images = { a: join(work, 'a.img'), b: join(work, 'b.img') };
  const lastOf = new Map<string, string>();
  /** Ranges changed since the last committed point of each source: what an incremental must read. */
  const changedSince = new Map<string, { offset: number; length: number }[]>();

  const verify = async (id: string, target: string, result: CliResult) => {
    const want = model.get(id)!.hash;
    if (result.code === 0 && (await sha256File(target)) === want) report.pointsVerified++;
    else {
      report.dataLost++;
      report.problems.push(
        `restore of ${id.slice(0, 8)} (${backend}) ${result.code === 0 ? 'gave wrong bytes' : `failed: ${lastLine(result.stderr)}`}`,
      );
    }
  };

  try {
    await json(['repo', 'init', '--pack-size', '1M']);
    await makeDiskImage(images.a, 16 * MiB, seed);
    await makeDiskImage(images.b, 6 * MiB, seed + 1);

    for (let trial = 0; trial < trials; trial++) {
      report.trials++;
      const op = model.size === 0 ? 'backup' : pick(['backup', 'backup', 'restore', 'forget', 'prune']);
      const withPrune = op !== 'prune' && rand() < 0.5;
      const killOpAt = rand() < 0.6 ? 150 + Math.floor(rand() * 700) : undefined;
      const killPruneAt = withPrune && rand() < 0.3 ? 150 + Math.floor(rand() * 700) : undefined;
      let args: string[];
      let onDone: (r: CliResult, killed: boolean) => Promise<void>;

      if (op === 'backup') {
        const source = pick(['a', 'b'] as const);
        const image = images[source];
        const size = (await stat(image)).size;
        const changed = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => {
          const offset = Math.floor(rand() * (size - 65536));
          return { offset, length: 1 + Math.floor(rand() * 65535) };
        });
        await overwrite(image, changed);
        const sinceParent = [...(changedSince.get(source) ?? []), ...changed];
        changedSince.set(source, sinceParent);
        const hash = await sha256File(image);
        const parent = lastOf.get(source);
        args = [
          'repo',
          'backup-image',
          image,
          '--name',
          'disk',
          '--source',
          source,
          '--tag',
          `trial-${trial}`,
          '--workers',
          '1',
          '--json',
        ];
        if (parent && model.has(parent) && rand() < 0.7) {
          const ranges = join(work, `changed-${trial}.json`);
          await writeFile(ranges, JSON.stringify(sinceParent));
          args.push('--parent', parent, '--changed', ranges);
        }
        onDone = async (r, killed) => {
          if (r.code === 0) {
            const id = JSON.parse(r.stdout).snapshot;
            model.set(id, { hash, source });
            lastOf.set(source, id);
            changedSince.set(source, []);
          } else {
            if (!killed) failed('backup', r);
            // Killed (or failed) after the commit but before it said so: the point exists and must be right.
            for (const p of await json(['repo', 'snapshots'])) {
              if (p.tags.includes(`trial-${trial}`)) {
                model.set(p.id, { hash, source });
                lastOf.set(source, p.id);
                changedSince.set(source, []);
              }
            }
          }
        };
      } else if (op === 'restore') {
        const id = pick([...model.keys()]);
        const target = join(work, `restore-${trial}.img`);
        args = ['repo', 'restore-image', id, target, '--workers', '1'];
        onDone = async (r, killed) => {
          if (!killed && r.code !== 0 && store.faults) failed('restore', r);
          else if (!killed || r.code === 0) await verify(id, target, r);
          else if (
            await stat(target).then(
              () => true,
              () => false,
            )
          )
            await verify(id, target, { ...r, code: 0 });
          await rm(target, { force: true });
          await rm(`${target}.goldsnap-partial`, { force: true });
        };
      } else if (op === 'forget') {
        const source = pick(['a', 'b']);
        const keep = 1 + Math.floor(rand() * 2);
        const plan = await json(['repo', 'forget', '--keep-last', String(keep), '--source', source, '--dry-run']);
        const doomed = new Set<string>(plan.filter((d: { keep: boolean }) => !d.keep).map((d: { id: string }) => d.id));
        args = ['repo', 'forget', '--keep-last', String(keep), '--source', source];
        onDone = async (r, killed) => {
          if (r.code !== 0 && !killed) failed('forget', r);
          for (const id of doomed) model.delete(id);
        };
      } else {
        args = ['repo', 'prune', '--grace', '0', '--wait', '10m'];
        onDone = async (r, killed) => pruneOutcome(r, killed);
      }
      const pruneOutcome = async (r: CliResult, killed: boolean) => {
        // Refusing beside another live prune is the designed outcome of two at once.
        if (r.code !== 0 && !killed && !/another prune is running/.test(r.stderr)) failed('prune', r);
      };

      const main = launch([...args, '--repo', opLocation], store.env);
      const side = withPrune
        ? launch(['repo', 'prune', '--grace', '0', '--wait', '10m', '--repo', opLocation], store.env)
        : undefined;
      const [killedMain, killedSide] = await Promise.all([
        killAfter(main.child, main.done, killOpAt),
        side ? killAfter(side.child, side.done, killPruneAt) : false,
      ]);
      report.kills += Number(killedMain) + Number(killedSide);
      await onDone(await main.done, killedMain);
      if (side) await pruneOutcome(await side.done, killedSide);

      // Every acknowledged point is still there, and the repository checks without errors.
      const listed = new Set((await json(['repo', 'snapshots'])).map((p: { id: string }) => p.id));
      for (const id of model.keys()) {
        if (!listed.has(id)) {
          report.dataLost++;
          report.problems.push(`recovery point ${id.slice(0, 8)} (${backend}) vanished`);
          model.delete(id);
        }
      }
      const check = await cli(['repo', 'check', '--json']);
      const errors: string[] =
        check.code === 0 || check.stdout ? JSON.parse(check.stdout || '{"errors":[]}').errors : [check.stderr];
      if (errors.length)
        report.problems.push(
          `check after trial ${trial} (${op}${withPrune ? ' + prune' : ''}, ${backend}): ${errors.join('; ')}`,
        );
      log(
        `${backend} trial ${trial}: ${op}${withPrune ? ' + prune' : ''}${killedMain ? ' (killed)' : ''}${killedSide ? ' (prune killed)' : ''}; ${model.size} points`,
      );
    }

    // The end: a last backup left to finish (so there is always a point to verify), a last
    // prune alone, a full read of the data, and every point restored.
    await overwrite(images.b, [{ offset: 0, length: 4096 }]);
    const lastBackup = await json(['repo', 'backup-image', images.b, '--name', 'disk', '--source', 'b']);
    model.set(lastBackup.snapshot, { hash: await sha256File(images.b), source: 'b' });
    const last = await cli(['repo', 'prune', '--grace', '0']);
    if (last.code !== 0) report.problems.push(`final prune failed (${backend}): ${last.stderr.trim()}`);
    const deep = await cli(['repo', 'check', '--read-data', '--json']);
    if (deep.code !== 0) report.problems.push(`final check --read-data (${backend}): ${deep.stdout}${deep.stderr}`);
    for (const id of model.keys()) {
      const target = join(work, `final-${id.slice(0, 8)}.img`);
      await verify(id, target, await cli(['repo', 'restore-image', id, target]));
      await rm(target, { force: true });
    }
  } catch (err) {
    report.problems.push(`${backend}: ${errorMessage(err)}`);
  } finally {
    await store.stop();
    await rm(work, { recursive: true, force: true });
  }
  return report;
}

/** The error, without the progress bars before it. */
function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? '';
}

export function summary(reports: TortureReport[]): string {
  const lines = reports.map(
    (r) =>
      `${r.backend.padEnd(8)} trials ${r.trials}, kills ${r.kills}, recovery points verified bit for bit ${r.pointsVerified}, data lost ${r.dataLost}, problems ${r.problems.length}` +
      (r.faults
        ? `; store faults: ${r.faults.requests} requests, ${r.faults.errors503} answered 503, ${r.faults.droppedBefore + r.faults.droppedAfter} connections dropped (${r.faults.droppedAfter} after the store acted), ${r.faults.delayed} slowed; ${r.faultFailures} commands failed on them`
        : ''),
  );
  const sum = (f: (r: TortureReport) => number) => reports.reduce((s, r) => s + f(r), 0);
  lines.push(
    `total    trials ${sum((r) => r.trials)}, kills ${sum((r) => r.kills)}, recovery points verified bit for bit ${sum((r) => r.pointsVerified)}, data lost ${sum((r) => r.dataLost)}`,
  );
  for (const r of reports) for (const p of r.problems) lines.push(`problem: ${p}`);
  return lines.join('\n');
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string', default: '1' },
      trials: { type: 'string', default: '20' },
      backends: { type: 'string', default: ALL_BACKENDS.join(',') },
      'no-faults': { type: 'boolean', default: false },
    },
  });
  const backends = values.backends.split(',') as BackendName[];
  for (const b of backends)
    if (!ALL_BACKENDS.includes(b)) throw new Error(`unknown backend ${b}: use ${ALL_BACKENDS.join(', ')}`);
  const seed = Number(values.seed);
  const started = Date.now();
  const reports = await runTorture({
    seed,
    trials: Number(values.trials),
    backends,
    faults: !values['no-faults'],
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`seed ${seed}, ${((Date.now() - started) / 1000).toFixed(0)} s\n${summary(reports)}\n`);
  if (reports.some((r) => r.dataLost > 0 || r.problems.length > 0)) process.exitCode = 1;
}
