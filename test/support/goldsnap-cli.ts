import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const GOLDSNAP_BIN = fileURLToPath(new URL('../../bin/goldsnap', import.meta.url));
export const TEST_PASSPHRASE = 'correct horse battery staple';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `goldsnap …` as a user would, with the test passphrase unless env says otherwise. */
export function startGoldsnap(args: string[], env: Record<string, string | undefined> = {}): ChildProcess {
  return spawn(GOLDSNAP_BIN, args, {
    env: { ...process.env, GOLDSNAP_PASSWORD: TEST_PASSPHRASE, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function finished(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

export function goldsnap(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return finished(startGoldsnap(args, env));
}

/** Runs goldsnap and fails with its output when it does not exit 0; returns parsed --json output. */
export async function goldsnapJson<T = any>(args: string[], env: Record<string, string | undefined> = {}): Promise<T> {
  const r = await goldsnap([...args, '--json'], env);
  if (r.code !== 0) throw new Error(`goldsnap ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
