import assert from 'node:assert/strict';
import { open, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeDiskImage, MiB, sha256File, tempDir } from '../support/disk-images.ts';
import { fileSystemTestsSkipReason } from '../support/file-systems.ts';
import { finished, goldsnapJson, startGoldsnap } from '../support/goldsnap-cli.ts';

const skip = fileSystemTestsSkipReason(['nbdfuse', 'fusermount3']);

async function mounts(): Promise<string> {
  return readFile('/proc/self/mounts', 'utf8');
}

/** Starts `repo mount` and waits for the line that says the images are there. */
async function startMount(args: string[]) {
  const child = startGoldsnap(['repo', 'mount', ...args, '--json']);
  const done = finished(child);
  const files = await new Promise<string[]>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line).files);
    });
    child.on('close', () => reject(new Error(`repo mount exited before mounting: ${out}`)));
  });
  return { child, done, files };
}

test('repo mount shows each disk as a read-only image, reads lazily, and unmounts on SIGTERM and Ctrl-C', {
  skip,
}, async (t) => {
  const dir = await tempDir(t, 'goldsnap-mount-');
  const repo = join(dir, 'repo');
  await goldsnapJson(['repo', 'init', '--repo', repo]);
  await makeDiskImage(join(dir, 'a.img'), 20 * MiB + 4096, 3);
  const { snapshot } = await goldsnapJson([
    'repo',
    'backup-image',
    join(dir, 'a.img'),
    '--repo',
    repo,
    '--name',
    'osdisk',
  ]);

  // SIGTERM: the whole image reads back bit for bit through a 2 MiB cache, then it unmounts.
  const mnt = join(dir, 'mnt');
  const first = await startMount([snapshot, mnt, '--repo', repo, '--cache', '2M']);
  assert.deepEqual(first.files, [join(mnt, 'osdisk/osdisk.img')]);
  assert.equal(await sha256File(first.files[0]), await sha256File(join(dir, 'a.img')));
  await assert.rejects(readFile(first.files[0], { flag: 'r+' }), /EACCES|EROFS|EPERM/);
  first.child.kill('SIGTERM');
  const r1 = await first.done;
  assert.equal(r1.code, 0, r1.stderr);
  assert.ok(!(await mounts()).includes(mnt), 'nothing stays mounted');
  assert.ok(!existsSync(join(mnt, 'osdisk')), 'the per-disk folder is gone');

  // Ctrl-C (SIGINT): reading 4 KiB fetches one chunk, not the disk.
  const second = await startMount([snapshot, mnt, '--repo', repo]);
  const head = Buffer.alloc(4096);
  const fh = await open(second.files[0], 'r');
  await fh.read(head, 0, 4096, 0);
  await fh.close();
  assert.deepEqual(head, (await readFile(join(dir, 'a.img'))).subarray(0, 4096));
  second.child.kill('SIGINT');
  const r2 = await second.done;
  assert.equal(r2.code, 0, r2.stderr);
  const m = /read ([\d.]+) (B|KiB|MiB) from the repository \((\d+) chunks/.exec(r2.stderr);
  assert.ok(m, r2.stderr);
  assert.ok(Number(m[3]) <= 2, `reading 4 KiB fetched ${m[3]} chunks`);
  assert.ok(!(await mounts()).includes(mnt));
});
