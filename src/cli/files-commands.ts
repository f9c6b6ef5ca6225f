import { Command, InvalidArgumentError } from 'commander';
import { resolve } from 'node:path';
import { fetchFiles, listFiles, matchingName, type FileEntry } from '../files/file-ops.ts';
import { CountingBackend } from '../files/counting-backend.ts';
import { mountPoint } from '../files/mount.ts';
import { PointDisks } from '../files/point-files.ts';
import { openBackend } from '../repository/backend/open.ts';
import { formatBytes } from '../repository/format.ts';
import { Repository } from '../repository/repository.ts';
import { readPassphrase } from './passphrase.ts';
import { sizeArg } from './parse.ts';

interface Options {
  repo?: string;
  passwordFile?: string;
  json?: boolean;
  disk?: string;
  partition?: number;
}

function partitionArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError(
      `"${value}" is not a partition number (1, 2, …; 0 for a disk with no partition table)`,
    );
  return n;
}

/** Opens the repository through a counting backend, so every command can say what it read. */
async function openCounted(opts: Options): Promise<{ repo: Repository; counter: CountingBackend }> {
  const location = opts.repo ?? process.env.GOLDSNAP_REPOSITORY;
  if (!location) throw new Error('no repository given: use --repo <location> or set GOLDSNAP_REPOSITORY');
  const counter = new CountingBackend(openBackend(location));
  return { repo: await Repository.open(counter, await readPassphrase(opts.passwordFile)), counter };
}

function common(cmd: Command): Command {
  return cmd
    .option('-r, --repo <location>', 'repository (env GOLDSNAP_REPOSITORY)')
    .option(
      '--password-file <file>',
      'read the passphrase from this file (env GOLDSNAP_PASSWORD_FILE; or set GOLDSNAP_PASSWORD)',
    )
    .option('--json', 'print the result as JSON');
}

function target(cmd: Command): Command {
  return common(cmd)
    .option('--disk <name>', 'which disk, when the recovery point has several')
    .option(
      '--partition <n>',
      'which partition, when the disk has several file systems (see `repo files partitions`)',
      partitionArg,
    );
}

let interrupted = false;

/** On Ctrl-C or SIGTERM, unmount what the command mounted before exiting. */
function unmountOnSignal(disks: PointDisks): void {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      interrupted = true;
      process.stderr.write(`goldsnap: interrupted: unmounting\n`);
      disks.closeAll().finally(() => process.exit(code));
    });
  }
}

function readLine(counter: CountingBackend, disks: PointDisks): string {
  return `read ${formatBytes(counter.bytesRead)} from the repository (${disks.chunksFetched} chunks, ${counter.requests} requests)`;
}

function modeString(e: FileEntry): string {
  const kind = { file: '-', dir: 'd', symlink: 'l', other: '?' }[e.type];
  const bits = 'rwxrwxrwx'
    .split('')
    .map((c, i) => ((e.mode >> (8 - i)) & 1 ? c : '-'))
    .join('');
  return kind + bits;
}

/** `repo files …`: browse and fetch files of a recovery point without restoring its disks. */
export function repoFilesCommand(): Command {
  const files = new Command('files').description(
    'browse and fetch files of a recovery point without restoring the disk (ext4, XFS, NTFS; GPT, MBR)',
  );

  common(files.command('partitions <point>'))
    .description('list the disks of a recovery point, their partitions and file systems')
    .action(async (point: string, opts: Options) => {
      const { repo, counter } = await openCounted(opts);
      const disks = await PointDisks.open(repo, point);
      const info = await disks.describe();
      const lines = info.flatMap((d) => [
        `${d.name}  ${formatBytes(d.sizeBytes)}  ${d.scheme}`,
        ...d.partitions.map(
          (p) =>
            `  ${String(p.number).padStart(2)}  ${p.fs.padEnd(7)} ${formatBytes(p.sizeBytes).padStart(10)}  at ${p.start}${p.name ? `  ${p.name}` : ''}`,
        ),
      ]);
      process.stdout.write(
        opts.json
          ? `${JSON.stringify({ disks: info, repositoryBytesRead: counter.bytesRead }, null, 2)}\n`
          : `${lines.join('\n')}\n`,
      );
      if (!opts.json) process.stderr.write(`${readLine(counter, disks)}\n`);
    });

  target(files.command('ls <point> [path]'))
    .description("list a folder (or a file) of a recovery point's file system")
    .option('-R, --recursive', 'list the whole tree under the folder')
    .option('--name <pattern>', 'only entries whose name matches (*, ?; any case), searched in the whole tree')
    .action(async (point: string, path: string | undefined, opts: Options & { recursive?: boolean; name?: string }) => {
      const { repo, counter } = await openCounted(opts);
      const disks = await PointDisks.open(repo, point);
      unmountOnSignal(disks);
      const where = await disks.partition(opts.disk, opts.partition);
      const listed = await disks.withFileSystem(where, (m) =>
        listFiles(m, path ?? '/', opts.recursive || opts.name !== undefined),
      );
      if (interrupted) return;
      const entries = opts.name === undefined ? listed : matchingName(listed, opts.name);
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ disk: where.image.name, partition: where.partition.number, fs: where.partition.fs, entries, repositoryBytesRead: counter.bytesRead }, null, 2)}\n`,
        );
        return;
      }
      const lines = entries.map(
        (e) =>
          `${modeString(e)} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${String(e.size).padStart(12)} ${e.mtime.slice(0, 19).replace('T', ' ')} ${e.path}${e.target !== undefined ? ` -> ${e.target}` : ''}`,
      );
      process.stdout.write(lines.length ? `${lines.join('\n')}\n` : '');
      process.stderr.write(`${readLine(counter, disks)}\n`);
    });

  target(files.command('get <point> <paths...>'))
    .description(
      'copy files or folders (recursively) out of a recovery point, keeping modes, owners, times and symlinks',
    )
    .requiredOption('--to <dir>', 'folder to copy them into (created if missing)')
    .action(async (point: string, paths: string[], opts: Options & { to: string }) => {
      const { repo, counter } = await openCounted(opts);
      const disks = await PointDisks.open(repo, point);
      unmountOnSignal(disks);
      const where = await disks.partition(opts.disk, opts.partition);
      const damaged = new Set<string>();
      const result = await disks.withFileSystem(
        where,
        (m) => fetchFiles(m, paths, resolve(opts.to)),
        (err) => damaged.add(err.message),
      );
      if (interrupted) return;
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ ...result, damaged: [...damaged], to: resolve(opts.to), repositoryBytesRead: counter.bytesRead }, null, 2)}\n`,
        );
      } else {
        for (const e of result.errors) process.stderr.write(`goldsnap: error: ${e.path}: ${e.error}\n`);
        for (const d of damaged) process.stderr.write(`goldsnap: cause: ${d}\n`);
        process.stdout.write(`fetched ${result.files} files (${formatBytes(result.bytes)}) into ${resolve(opts.to)}\n`);
        process.stderr.write(`${readLine(counter, disks)}\n`);
      }
      if (result.errors.length) process.exitCode = 1;
    });

  return files;
}

/** `repo mount`: every disk of a recovery point as a read-only image file, read lazily. */
export function repoMountCommand(): Command {
  return common(new Command('mount'))
    .arguments('<point> <dir>')
    .description(
      'show each disk of a recovery point as a read-only image file <dir>/<disk>/<disk>.img (FUSE), read lazily; Ctrl-C unmounts',
    )
    .option('--cache <size>', 'memory for decrypted chunks (default 32 MiB)', sizeArg)
    .action(async (point: string, dir: string, opts: Options & { cache?: number }) => {
      const { repo, counter } = await openCounted(opts);
      const cacheChunks = opts.cache ? Math.max(1, Math.floor(opts.cache / repo.config.chunkSize)) : undefined;
      const disks = await PointDisks.open(repo, point, { cacheChunks });
      await mountPoint(disks, resolve(dir), {
        onReady: (files) => {
          process.stdout.write(
            opts.json
              ? `${JSON.stringify({ files })}\n`
              : `${files.map((f) => `mounted ${f}`).join('\n')}\nread-only; press Ctrl-C (or send SIGTERM) to unmount\n`,
          );
        },
        onStopped: () => process.stderr.write(`unmounted ${resolve(dir)}; ${readLine(counter, disks)}\n`),
      });
    });
}
