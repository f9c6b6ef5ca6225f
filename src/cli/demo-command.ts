import { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { mkdir, open, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { backupImage } from '../dataplane/backup-image.ts';
import { restoreImage } from '../dataplane/restore-image.ts';
import { openBackend } from '../repository/backend/open.ts';
import { formatBytes, MiB } from '../repository/format.ts';
import { Repository } from '../repository/repository.ts';
import { ProgressBar } from './progress.ts';

/**
 * A first look with nothing to set up: makes a sample disk image in the data folder, backs it up
 * into a repository there, changes it, takes an incremental, and restores it. Every step is what
 * `goldsnap repo …` does; the passphrase is GOLDSNAP_PASSWORD or, for the demo only, a fixed one.
 */
export function demoCommand(): Command {
  return new Command('demo')
    .description('back up and restore a sample disk image in ./.goldsnap (a first look; no setup needed)')
    .option('--data <dir>', 'data folder', '.goldsnap')
    .action(async (opts: { data: string }) => {
      const dataDir = resolve(opts.data);
      await mkdir(dataDir, { recursive: true });
      const passphrase = process.env.GOLDSNAP_PASSWORD ?? 'goldsnap demo passphrase';
      const repoDir = join(dataDir, 'demo-repository');
      const backend = openBackend(repoDir);
      const repo = await ((await stat(join(repoDir, 'config')).then(
        () => true,
        () => false,
      ))
        ? Repository.open(backend, passphrase)
        : Repository.init(backend, passphrase));
      const image = join(dataDir, 'demo-disk.img');
      await writeSampleImage(image, 256 * MiB);
      const run = async (
        label: string,
        work: (onProgress: (p: { doneBytes: number; totalBytes: number }) => void) => Promise<void>,
      ) => {
        const bar = new ProgressBar(label);
        try {
          await work((p) => bar.update(p.doneBytes, p.totalBytes));
        } finally {
          bar.stop();
        }
      };
      let full!: Awaited<ReturnType<typeof backupImage>>;
      await run('full backup  ', async (onProgress) => {
        full = await backupImage(repo, { imagePath: image, diskName: 'disk0', source: 'demo', onProgress });
      });
      console.log(
        `recovery point ${full.id.slice(0, 8)}: ${full.point.disks[0].stats.newChunks} chunks stored, ${full.point.disks[0].stats.zeroChunks} zero chunks skipped`,
      );
      const changed = { offset: 64 * MiB, length: 2 * MiB };
      const fh = await open(image, 'r+');
      await fh.write(randomBytes(changed.length), 0, changed.length, changed.offset);
      await fh.close();
      const rangesFile = join(dataDir, 'demo-changed.json');
      await writeFile(rangesFile, JSON.stringify([changed]));
      let incr!: Awaited<ReturnType<typeof backupImage>>;
      await run('incremental  ', async (onProgress) => {
        incr = await backupImage(repo, {
          imagePath: image,
          diskName: 'disk0',
          source: 'demo',
          parent: full.id,
          changedRangesFile: rangesFile,
          onProgress,
        });
      });
      console.log(
        `recovery point ${incr.id.slice(0, 8)}: read ${formatBytes(incr.point.disks[0].stats.readBytes)} of ${formatBytes(incr.point.disks[0].sizeBytes)}`,
      );
      const target = join(dataDir, 'demo-restored.img');
      await run('restore      ', async (onProgress) => {
        await restoreImage(repo, { pointId: incr.id, targetPath: target, overwrite: true, onProgress });
      });
      console.log(`restored to ${target}. Explore with: bin/goldsnap repo snapshots --repo ${repoDir}`);
    });
}

async function writeSampleImage(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(size);
  for (let offset = 0; offset < size / 2; offset += 4 * MiB) {
    const data =
      offset % (16 * MiB) === 0 ? randomBytes(4 * MiB) : Buffer.alloc(4 * MiB, `sample file content at ${offset}\n`);
    await fh.write(data, 0, data.length, offset);
  }
  await fh.close();
}
