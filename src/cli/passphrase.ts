import { readFile, stat } from 'node:fs/promises';
import { read } from 'read';

/**
 * The repository passphrase, from (in order) a file named by --password-file or
 * GOLDSNAP_PASSWORD_FILE, the GOLDSNAP_PASSWORD variable, or a prompt when stdin is a terminal.
 * It is never echoed nor logged.
 */
export async function readPassphrase(
  file: string | undefined,
  purpose = 'repository passphrase',
  envName = 'GOLDSNAP_PASSWORD',
): Promise<string> {
  const path = file ?? process.env[`${envName}_FILE`];
  if (path) {
    const text = await readFile(path, 'utf8').catch((err) => {
      throw new Error(
        `cannot read the passphrase file ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`,
      );
    });
    await warnIfWorldReadable(path);
    return text.replace(/\r?\n$/, '');
  }
  const fromEnv = process.env[envName];
  if (fromEnv !== undefined) return fromEnv;
  if (process.stdin.isTTY) return prompt(`${purpose}: `);
  throw new Error(`no ${purpose}: set ${envName}, or ${envName}_FILE / --password-file to a file holding it`);
}

/** Asks on the terminal with echo muted (npm's `read`, so no readline internals are patched). */
async function prompt(question: string): Promise<string> {
  const answer = await read({ prompt: question, silent: true, replace: '', output: process.stderr });
  process.stderr.write('\n'); // the Enter key was not echoed either
  return answer;
}

/** Anyone on the machine could open the repository with a world-readable passphrase file: say so. */
async function warnIfWorldReadable(path: string): Promise<void> {
  const mode = (await stat(path).catch(() => undefined))?.mode;
  if (mode !== undefined && (mode & 0o004) !== 0) {
    process.stderr.write(
      `goldsnap: warning: the passphrase file ${path} can be read by every user of this machine (mode ${(mode & 0o777).toString(8)}); run \`chmod 600 ${path}\`\n`,
    );
  }
}
