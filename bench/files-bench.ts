/**
 * The file-level restore section of `npm run bench`: on a recovery point of the bench image with
 * one 10 MiB file added, the time and the bytes read from the repository to list /etc and to
 * fetch that file, against restoring the whole 2 GiB image (whose reads are every stored chunk of
 * the point, counted from the repository's own index).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openBackend } from '../src/repository/backend/open.ts';
import { Repository } from '../src/repository/repository.ts';
import { diffImages } from './disk-fixture.ts';

export interface FilesBenchInput {
  /** The image the parent point was made from, and that point's id. */
  parentImage: string;
  parentId: string;
  repo: string;
  passphrase: string;
  /** Seconds `repo restore-image` took for a point of the same image. */
  restoreSeconds: number;
  work: string;
  /** bin/goldsnap, as a user runs it (and as the other scenarios run it). */
  goldsnap: string;
  log: (line: string) => void;
}

export interface FilesBenchRow {
  what: string;
  seconds: number;
  readMiB: number;
}

export async function benchFileRestore(input: FilesBenchInput): Promise<FilesBenchRow[]> {
  const { work, log } = input;
  const env = { ...process.env, GOLDSNAP_PASSWORD: input.passphrase };
  const goldsnap = (args: string[]) => {
    const started = process.hrtime.bigint();
    const r = spawnSync(input.goldsnap, ['repo', ...args, '--repo', input.repo, '--json'], {
      env,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 ** 2,
    });
    if (r.status !== 0) throw new Error(`goldsnap repo ${args.join(' ')} failed: ${r.stderr}`);
    return { seconds: Number(process.hrtime.bigint() - started) / 1e9, out: JSON.parse(r.stdout) };
  };

  log('file-level restore: a point of the image with a 10 MiB file added (debugfs write)');
  const image = join(work, 'files-src.img');
  execFileSync('cp', ['--sparse=always', input.parentImage, image]);
  const payload = join(work, 'bench-10MiB.bin');
  const content = randomBytes(10 * 1024 ** 2);
  writeFileSync(payload, content);
  execFileSync('debugfs', ['-w', '-R', `write ${payload} /root/bench-10MiB.bin`, image], { stdio: 'ignore' });
  const rangesFile = join(work, 'files-ranges.json');
  writeFileSync(rangesFile, JSON.stringify(diffImages(input.parentImage, image)));
  const point = goldsnap([
    'backup-image',
    image,
    '--name',
    'disk.img',
    '--source',
    'bench', // the bench's image with a file added: the same disk, so an incremental of its point
    '--parent',
    input.parentId,
    '--changed',
    rangesFile,
  ]).out.snapshot as string;
  rmSync(image);

  log('file-level restore: list /etc');
  const ls = goldsnap(['files', 'ls', point, '/etc']);
  log('file-level restore: fetch the 10 MiB file');
  const to = join(work, 'files-out');
  rmSync(to, { recursive: true, force: true });
  const get = goldsnap(['files', 'get', point, '/root/bench-10MiB.bin', '--to', to]);
  if (!readFileSync(join(to, 'bench-10MiB.bin')).equals(content))
    throw new Error('the fetched file differs from the one written');
  rmSync(to, { recursive: true });
  rmSync(payload);

  // What a whole restore reads: every distinct stored chunk of the point.
  const repo = await Repository.open(openBackend(input.repo), input.passphrase);
  const { point: rp } = await repo.resolveRecoveryPoint(point);
  const fidx = await repo.loadFixedIndex(rp.disks[0].fixedIndex);
  const index = await repo.loadIndex();
  let restoreBytes = 0;
  for (const id of new Set(fidx.storedIds())) restoreBytes += index.get(id)?.length ?? 0;

  const MiB = 1024 ** 2;
  return [
    { what: 'list /etc', seconds: ls.seconds, readMiB: ls.out.repositoryBytesRead / MiB },
    { what: 'fetch a 10 MiB file', seconds: get.seconds, readMiB: get.out.repositoryBytesRead / MiB },
    { what: 'restore the whole image', seconds: input.restoreSeconds, readMiB: restoreBytes / MiB },
  ];
}
