import { spawn } from 'node:child_process';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs a program and collects its output. Always asynchronous: the process that serves the
 * images these programs read is this one, so a synchronous wait would deadlock it. Messages are
 * in the C locale, as they are parsed (GNU tools quote ‘like this’ in UTF-8 locales).
 */
export function run(command: string, args: string[], env?: Record<string, string>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', ...env },
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    child.on('error', (err) => reject(toolError(command, err)));
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr }));
  });
}

/** The Debian package that brings each external program file-level restore uses. */
export const PACKAGE_OF: Record<string, string> = {
  nbdfuse: 'libnbd-bin',
  fusermount3: 'fuse3',
  fuse2fs: 'fuse2fs',
  'ntfs-3g': 'ntfs-3g',
  xfs_db: 'xfsprogs',
  find: 'findutils',
  cp: 'coreutils',
};

export function toolError(command: string, err: Error & { code?: string }): Error {
  if (err.code === 'ENOENT') {
    const pkg = PACKAGE_OF[command];
    return new Error(
      `${command} is not installed${pkg ? `: install Debian's ${pkg} package (apt-get install ${pkg})` : ''}`,
    );
  }
  return err;
}
