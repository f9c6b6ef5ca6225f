import { readFile, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';

/**
 * The repository passphrase, from (in order) a file named by --password-file or
 * GOLDSNAP_PASSWORD_FILE, the GOLDSNAP_PASSWORD variable, or a prompt when stdin is a terminal.
 * It is never echoed nor logged.
 */
export async function readPassphrase(file: string | undefined, purpose = 'repository passphrase', envName = 'GOLDSNAP_PASSWORD'): Promise<string> {
  const path = file ?? process.env[`${envName}_FILE`];
  if (path) {
    const text = await readFile(path, 'utf8').catch(err => {
      throw new Error(`cannot read the passphrase file ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
    });
    await warnIfWorldReadable(path);
    return text.replace(/\r?\n$/, '');
  }
  const fromEnv = process.env[envName];
  if (fromEnv !== undefined) return fromEnv;
  if (process.stdin.isTTY) return prompt(`${purpose}: `);
  throw new Error(`no ${purpose}: set ${envName}, or ${envName}_FILE / --password-file to a file holding it`);
}

function prompt(question: string): Promise<string> {
  return new Promise(resolve => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    // Print the question, then mute echo of what is typed.
    const write = (rl as any)._writeToOutput;
    (rl as any)._writeToOutput = (s: string) => { if (s.includes(question)) write.call(rl, s); };
    rl.question(question, answer => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
  });
}

/** Anyone on the machine could open the repository with a world-readable passphrase file: say so. */
async function warnIfWorldReadable(path: string): Promise<void> {
  const mode = (await stat(path).catch(() => undefined))?.mode;
  if (mode !== undefined && (mode & 0o004) !== 0) {
    process.stderr.write(`goldsnap: warning: the passphrase file ${path} can be read by every user of this machine (mode ${(mode & 0o777).toString(8)}); run \`chmod 600 ${path}\`\n`);
  }
}
