import { Command, Option } from 'commander';
import { basename, resolve } from 'node:path';
import { hostname } from 'node:os';
import { backupImage } from '../dataplane/backup-image.ts';
import { restoreImage } from '../dataplane/restore-image.ts';
import { ChunkCodec } from '../dataplane/chunk-codec.ts';
import { openBackend } from '../repository/backend/open.ts';
import { checkRepository } from '../repository/check.ts';
import { formatBytes } from '../repository/format.ts';
import { prune } from '../repository/prune.ts';
import { repairIndex } from '../repository/repair-index.ts';
import { Repository } from '../repository/repository.ts';
import { applyRetention, validatePolicy } from '../repository/retention.ts';
import { readPassphrase } from './passphrase.ts';
import { collect, countArg, durationArg, keepOptions, retentionFrom, sizeArg, type KeepOptions } from './parse.ts';
import { ProgressBar } from './progress.ts';

interface RepoOptions {
  repo?: string;
  passwordFile?: string;
  json?: boolean;
}

function repoLocation(opts: RepoOptions): string {
  const location = opts.repo ?? process.env.GOLDSNAP_REPOSITORY;
  if (!location) throw new Error('no repository given: use --repo <location> or set GOLDSNAP_REPOSITORY');
  return location;
}

async function openRepo(opts: RepoOptions): Promise<Repository> {
  const backend = openBackend(repoLocation(opts));
  return Repository.open(backend, await readPassphrase(opts.passwordFile));
}

function print(opts: RepoOptions, json: unknown, text: string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
}

/** Runs `work` with a progress bar, stopping the bar before anything else is printed. */
async function withProgress<T>(
  label: string,
  _opts: RepoOptions,
  work: (update: (p: { doneBytes: number; totalBytes: number }) => void) => Promise<T>,
): Promise<T> {
  const bar = new ProgressBar(label);
  try {
    return await work((p) => bar.update(p.doneBytes, p.totalBytes));
  } finally {
    bar.stop();
  }
}

export function repoCommands(): Command {
  const repo = new Command('repo').description(
    'work with a repository directly: init, back up and restore disk images, check, forget, prune',
  );
  const common = (cmd: Command) =>
    cmd
      .option(
        '-r, --repo <location>',
        'repository: a folder, s3:http://host:port/bucket/prefix, azure://container/prefix (env GOLDSNAP_REPOSITORY)',
      )
      .option(
        '--password-file <file>',
        'read the passphrase from this file (env GOLDSNAP_PASSWORD_FILE; or set GOLDSNAP_PASSWORD)',
      )
      .option('--json', 'print the result as JSON');

  common(repo.command('init'))
    .description('create a new, empty, encrypted repository')
    .option('--chunk-size <size>', 'size of the chunks disks are cut into (power of two)', sizeArg)
    .option('--pack-size <size>', 'size at which pack files are closed (default 16MiB)', sizeArg)
    .action(async (opts: RepoOptions & { chunkSize?: number; packSize?: number }) => {
      const backend = openBackend(repoLocation(opts));
      const r = await Repository.init(backend, await readPassphrase(opts.passwordFile), {
        chunkSize: opts.chunkSize,
        packSize: opts.packSize,
      });
      print(
        opts,
        { id: r.config.id, location: r.location, chunkSize: r.config.chunkSize, packSize: r.config.packSize },
        `created repository ${r.config.id.slice(0, 8)} at ${r.location} (chunks ${formatBytes(r.config.chunkSize)}, packs ${formatBytes(r.config.packSize)})`,
      );
    });

  const key = repo
    .command('key')
    .description('manage key slots: each slot opens the repository with its own passphrase');
  common(key.command('add'))
    .description('add a key slot for a new passphrase (from GOLDSNAP_NEW_PASSWORD, --new-password-file, or a prompt)')
    .option('--new-password-file <file>', 'file holding the new passphrase')
    .action(async (opts: RepoOptions & { newPasswordFile?: string }) => {
      const r = await openRepo(opts);
      const id = await r.addKeySlot(
        await readPassphrase(opts.newPasswordFile, 'new passphrase', 'GOLDSNAP_NEW_PASSWORD'),
      );
      print(opts, { id }, `added key slot ${id}`);
    });
  common(key.command('list'))
    .description('list key slots')
    .action(async (opts: RepoOptions) => {
      const r = await openRepo(opts);
      const slots = await r.listKeySlots();
      print(
        opts,
        [
          ...slots.map((s) => ({ id: s.id, created: s.slot.created, hostname: s.slot.hostname })),
          ...r.damagedKeySlots.map((d) => ({ id: d.id, damaged: d.why })),
        ],
        [
          ...slots.map((s) => `${s.id}  created ${s.slot.created} on ${s.slot.hostname}`),
          ...r.damagedKeySlots.map((d) => `${d.id}  DAMAGED: ${d.why}`),
        ].join('\n'),
      );
    });
  common(key.command('remove <id>'))
    .description('remove a key slot (never the last one)')
    .action(async (id: string, opts: RepoOptions) => {
      await (await openRepo(opts)).removeKeySlot(id);
      print(opts, { removed: id }, `removed key slot ${id}`);
    });

  common(repo.command('migrate'))
    .description('upgrade the repository to the current format (format 1 → 2: the config gets authenticated)')
    .action(async (opts: RepoOptions) => {
      const passphrase = await readPassphrase(opts.passwordFile);
      const r = await Repository.open(openBackend(repoLocation(opts)), passphrase);
      const { from, to } = await r.migrate(passphrase, await r.keySlotOf(passphrase));
      print(
        opts,
        { from, to },
        from === to
          ? `the repository is at format ${to} already: nothing to do`
          : `upgraded the repository from format ${from} to ${to}; goldsnap older than format ${to} can no longer open it`,
      );
    });

  common(repo.command('backup-image <image>'))
    .description('back up a raw disk image or block device as a new recovery point')
    .option('--name <name>', 'disk name within the recovery point (default: the image file name)')
    .option('--source <source>', 'what this is a backup of; retention groups by it (default: host:path)')
    .option('--tag <tag>', 'tag the recovery point (repeatable)', collect)
    .option('--parent <id>', 'the previous recovery point of this disk: unchanged chunks are taken from it')
    .option('--changed <file>', 'JSON list of {offset, length} byte ranges changed since --parent; only those are read')
    .option('--workers <n>', 'chunks worked on in parallel, in cores (default: one per core)', countArg)
    .action(
      async (
        image: string,
        opts: RepoOptions & {
          name?: string;
          source?: string;
          tag?: string[];
          parent?: string;
          changed?: string;
          workers?: number;
        },
      ) => {
        const r = await openRepo(opts);
        const started = Date.now();
        const { id, point } = await withProgress('backup ', opts, (onProgress) =>
          backupImage(r, {
            imagePath: image,
            diskName: opts.name ?? basename(image),
            source: opts.source ?? `${hostname()}:${resolve(image)}`,
            tags: opts.tag,
            parent: opts.parent,
            changedRangesFile: opts.changed,
            workers: opts.workers || undefined,
            onProgress,
          }),
        );
        const d = point.disks[0];
        const seconds = (Date.now() - started) / 1000;
        print(
          opts,
          { snapshot: id, ...d, seconds },
          `recovery point ${id.slice(0, 8)} saved: ${d.name} ${formatBytes(d.sizeBytes)}, read ${formatBytes(d.stats.readBytes)} in ${seconds.toFixed(1)} s, ` +
            `${d.stats.zeroChunks} zero chunks, ${d.stats.newChunks} new chunks (${formatBytes(d.stats.newStoredBytes)} stored)`,
        );
      },
    );

  common(repo.command('restore-image <snapshot> <target>'))
    .description('restore a disk of a recovery point to an image file or block device, bit for bit')
    .option('--disk <name>', 'which disk, when the recovery point has several')
    .option('--force', 'replace the target file if it exists')
    .option(
      '--salvage',
      'restore all that can be read, write zeros where data is damaged, list those ranges and exit 3',
    )
    .option('--workers <n>', 'chunks worked on in parallel, in cores (default: one per core)', countArg)
    .action(
      async (
        snapshot: string,
        target: string,
        opts: RepoOptions & { disk?: string; force?: boolean; salvage?: boolean; workers?: number },
      ) => {
        const r = await openRepo(opts);
        const started = Date.now();
        const { sizeBytes, damaged } = await withProgress('restore', opts, (onProgress) =>
          restoreImage(r, {
            pointId: snapshot,
            diskName: opts.disk,
            targetPath: target,
            overwrite: opts.force,
            salvage: opts.salvage,
            workers: opts.workers || undefined,
            onProgress,
          }),
        );
        const seconds = (Date.now() - started) / 1000;
        const lostBytes = damaged.reduce((sum, d) => sum + d.length, 0);
        print(
          opts,
          { target, sizeBytes, seconds, damaged, damagedBytes: lostBytes },
          [
            ...damaged.map(
              (d) =>
                `damaged: bytes ${d.offset}-${d.offset + d.length - 1} (${formatBytes(d.length)}) written as zeros: ${d.reason}`,
            ),
            damaged.length
              ? `restored ${formatBytes(sizeBytes)} to ${target} in ${seconds.toFixed(1)} s, but ${formatBytes(lostBytes)} in ${damaged.length} ranges could not be read and are zeros`
              : `restored ${formatBytes(sizeBytes)} to ${target} in ${seconds.toFixed(1)} s`,
          ].join('\n'),
        );
        // Distinct from 1 (nothing restored): the image exists, but is not the disk as it was.
        if (damaged.length) process.exitCode = 3;
      },
    );

  common(repo.command('snapshots'))
    .description('list recovery points, oldest first')
    .action(async (opts: RepoOptions) => {
      const points = await (await openRepo(opts)).listRecoveryPoints();
      const rows = points.map(
        ({ id, point }) =>
          `${id.slice(0, 8)}  ${point.time.replace('T', ' ').slice(0, 19)}  ${point.disks.map((d) => `${d.name} (${formatBytes(d.sizeBytes)})`).join(', ')}  ${point.source}${point.tags.length ? `  [${point.tags.join(',')}]` : ''}`,
      );
      print(
        opts,
        points.map(({ id, point }) => ({ id, ...point })),
        rows.length
          ? `ID        TIME                 DISKS  SOURCE\n${rows.join('\n')}\n${rows.length} recovery points`
          : 'no recovery points',
      );
    });

  common(repo.command('check'))
    .description('verify the repository structure; with --read-data also decrypt and re-hash every chunk')
    .option('--read-data', 'read every pack and verify every chunk')
    .action(async (opts: RepoOptions & { readData?: boolean }) => {
      const r = await openRepo(opts);
      const codec = opts.readData ? new ChunkCodec(r.key) : undefined;
      const bar = new ProgressBar('check  ', 'count');
      try {
        const report = await checkRepository(r, {
          readData: opts.readData,
          codec,
          onProgress: (done, total) => bar.update(done, total),
        });
        bar.stop();
        const lines = [
          ...report.warnings.map((w) => `warning: ${w}`),
          ...report.errors.map((e) => `error: ${e}`),
          ...report.advice.map((a) => `repair: ${a}`),
          `${report.packs} packs, ${report.chunks} chunks, ${report.recoveryPoints} recovery points checked${opts.readData ? `, ${formatBytes(report.bytesRead)} read` : ''}: ` +
            (report.errors.length ? `${report.errors.length} errors` : 'no errors'),
        ];
        print(opts, report, lines.join('\n'));
        if (report.errors.length) process.exitCode = 1;
      } finally {
        bar.stop();
      }
    });

  const repair = repo.command('repair').description('repair a damaged repository');
  common(repair.command('index'))
    .description('rebuild the index from the headers of the packs (when index files are damaged or lost)')
    .action(async (opts: RepoOptions) => {
      const r = await openRepo(opts);
      const bar = new ProgressBar('repair ', 'count');
      let report;
      try {
        report = await repairIndex(r, {
          log: (line) => process.stderr.write(`repair: ${line}\n`),
          onProgress: (done, total) => bar.update(done, total),
        });
      } finally {
        bar.stop();
      }
      print(
        opts,
        report,
        `indexed ${report.chunks} chunks of ${report.packs} packs; replaced ${report.replacedIndexFiles} index files` +
          (report.damagedPacks.length
            ? `; ${report.damagedPacks.length} packs have a damaged header and were left out: run \`goldsnap repo check\` to see which recovery points lose data`
            : ''),
      );
      if (report.damagedPacks.length) process.exitCode = 1;
    });

  keepOptions(
    common(repo.command('forget')).description(
      'delete recovery points that a grandfather-father-son policy does not keep (per source)',
    ),
  )
    .option('--time-zone <tz>', 'time zone for hours, days, weeks… (IANA name)', 'UTC')
    .option('--source <source>', 'only this source')
    .option('--dry-run', 'only say what would be deleted')
    .option('--prune', 'run prune afterwards to free the space')
    .addOption(
      new Option('--grace <duration>', 'with --prune: leave unreferenced data younger than this')
        .default(3_600_000, '1h')
        .argParser(durationArg),
    )
    .addOption(
      new Option('--wait <duration>', 'with --prune: how long to wait for backups that started before the prune')
        .default(3_600_000, '1h')
        .argParser(durationArg),
    )
    .addOption(
      new Option('--stale-after <duration>', 'with --prune: a backup whose heartbeat is older than this is dead')
        .default(600_000, '10m')
        .argParser(durationArg),
    )
    .action(
      async (
        opts: RepoOptions &
          KeepOptions & {
            timeZone: string;
            source?: string;
            dryRun?: boolean;
            prune?: boolean;
            grace: number;
            wait: number;
            staleAfter: number;
          },
      ) => {
        const policy = retentionFrom(opts);
        validatePolicy(policy);
        try {
          new Intl.DateTimeFormat('en-US', { timeZone: opts.timeZone });
        } catch {
          throw new Error(`unknown time zone ${opts.timeZone}; use an IANA name such as Europe/Paris`);
        }
        const r = await openRepo(opts);
        const groups = new Map<string, Awaited<ReturnType<Repository['listRecoveryPoints']>>>();
        for (const e of await r.listRecoveryPoints()) {
          if (opts.source && e.point.source !== opts.source) continue;
          groups.set(e.point.source, [...(groups.get(e.point.source) ?? []), e]);
        }
        const lines: string[] = [];
        const result: { source: string; id: string; time: string; keep: boolean; reasons: string[] }[] = [];
        for (const [source, entries] of groups) {
          lines.push(`${source}:`);
          for (const d of applyRetention(entries, (e) => new Date(e.point.time), policy, opts.timeZone)) {
            result.push({ source, id: d.item.id, time: d.item.point.time, keep: d.keep, reasons: d.reasons });
            lines.push(
              `  ${d.keep ? 'keep  ' : 'remove'} ${d.item.id.slice(0, 8)} ${d.item.point.time}${d.keep ? ` (${d.reasons.join(', ')})` : ''}`,
            );
            if (!d.keep && !opts.dryRun) await r.deleteRecoveryPoint(d.item.id);
          }
        }
        print(opts, result, lines.join('\n') || 'no recovery points');
        if (opts.prune && !opts.dryRun)
          await runPrune(r, { graceMs: opts.grace, waitMs: opts.wait, staleAfterMs: opts.staleAfter }, opts);
      },
    );

  common(repo.command('prune'))
    .description('free the space of data no recovery point needs; safe while backups run')
    .addOption(
      new Option(
        '--grace <duration>',
        'leave unreferenced data younger than this (it may belong to a backup in progress)',
      )
        .default(3_600_000, '1h')
        .argParser(durationArg),
    )
    .addOption(
      new Option('--wait <duration>', 'how long to wait for backups that started before the prune')
        .default(3_600_000, '1h')
        .argParser(durationArg),
    )
    .addOption(
      new Option('--stale-after <duration>', 'a backup whose heartbeat is older than this is dead')
        .default(600_000, '10m')
        .argParser(durationArg),
    )
    .option('--dry-run', 'only say what would be removed')
    .action(async (opts: RepoOptions & { grace: number; wait: number; staleAfter: number; dryRun?: boolean }) => {
      await runPrune(
        await openRepo(opts),
        { graceMs: opts.grace, waitMs: opts.wait, staleAfterMs: opts.staleAfter, dryRun: opts.dryRun },
        opts,
      );
    });

  return repo;
}

async function runPrune(r: Repository, pruneOpts: Parameters<typeof prune>[1], opts: RepoOptions): Promise<void> {
  const report = await prune(r, { ...pruneOpts, log: (line) => process.stderr.write(`prune: ${line}\n`) });
  print(
    opts,
    report,
    `${pruneOpts?.dryRun ? 'would remove' : 'removed'} ${report.deletedPacks} packs (${formatBytes(report.freedBytes)}) and ${report.deletedFixedIndexes} fixed indexes; ` +
      `rewrote ${report.repackedPacks} packs into ${report.newPacks}; kept ${report.keptPacks} packs` +
      (report.deletedLeftovers || report.deletedSessions
        ? `; cleared ${report.deletedLeftovers} temp files and ${report.deletedSessions} dead session markers`
        : ''),
  );
}
