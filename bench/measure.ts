/**
 * How the bench measures: a command under GNU time (wall-clock seconds and peak resident memory),
 * the size of a folder, the load average at that moment, and the median of repeated runs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;

export const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

export interface Measure {
  seconds: number;
  peakRssMiB: number;
  /** One-minute load average when the command ended (the machine is shared). */
  load1: number;
  stdout: string;
}

/** Runs a command under GNU time for wall-clock seconds and peak resident memory. */
export function measure(
  label: string,
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd: string; timeFile: string },
): Measure {
  log(`${label}  (load ${uptime()})`);
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M', '-o', opts.timeFile, command, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    maxBuffer: 256 * MiB,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.status !== 0) {
    throw new Error(
      `${label} failed (exit ${result.status}): ${command} ${args.join(' ')}\n${result.stderr.slice(-4000)}`,
    );
  }
  const [seconds, rssKiB] = readFileSync(opts.timeFile, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
  return { seconds, peakRssMiB: rssKiB / 1024, load1: loadavg()[0], stdout: result.stdout };
}

/** Bytes a folder takes on disk, as `du` counts them (apparent sizes). */
export function dirBytes(path: string): number {
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split(/\s+/)[0]);
}

export function uptime(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Reads a file once so that every tool starts from the same warm page cache, and writes back what
 * the copy before left dirty, so that no tool's fsyncs wait on that writeback.
 */
export function warm(path: string): void {
  execFileSync('cat', [path], { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 0 });
  execFileSync('sync');
}

export function sameContent(a: string, b: string): boolean {
  return spawnSync('cmp', ['-s', a, b]).status === 0;
}

export function copySparse(from: string, to: string): void {
  execFileSync('cp', ['--sparse=always', from, to]);
}

export const timeFileIn = (dir: string) => join(dir, 'time.txt');
