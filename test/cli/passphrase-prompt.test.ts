import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../support/disk-images.ts';
import { GOLDSNAP_BIN } from '../support/goldsnap-cli.ts';

/**
 * Runs goldsnap on a pseudo-terminal (util-linux `script`), types `typed` once the prompt shows,
 * and returns all the terminal showed.
 */
function atTerminal(args: string[], typed: string): Promise<{ code: number | null; screen: string }> {
  const env = { ...process.env };
  delete env.GOLDSNAP_PASSWORD;
  delete env.GOLDSNAP_PASSWORD_FILE;
  const command = [GOLDSNAP_BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  let answered = false;
  child.stdout.on('data', (d) => {
    screen += d;
    if (!answered && screen.includes('repository passphrase: ')) {
      answered = true;
      child.stdin.write(`${typed}\r`);
    }
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, screen })));
}

test('the passphrase is asked on the terminal without echo, and a wrong one is refused', async (t) => {
  const repo = join(await tempDir(t), 'repo');
  const init = await atTerminal(['repo', 'init', '--repo', repo], 'typed s3cret');
  assert.equal(init.code, 0, init.screen);
  assert.match(init.screen, /created repository/);
  assert.doesNotMatch(init.screen, /typed s3cret/, 'what is typed is not echoed');

  const list = await atTerminal(['repo', 'snapshots', '--repo', repo], 'typed s3cret');
  assert.equal(list.code, 0, list.screen);
  assert.match(list.screen, /no recovery points/);

  const wrong = await atTerminal(['repo', 'snapshots', '--repo', repo], 'not it');
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.screen, /wrong passphrase/);
});
