/**
 * `npm run bench`: Goldsnap against restic (Debian's package) on a 2 GiB ext4 image of a real
 * Debian tree, in the same run on the same machine: full backup, incremental backup of a copy with
 * about 2% changed, restore of the incremental, repository size and peak RSS. Prints ratios and
 * writes them to .bench/results.json. Installs restic, debootstrap and friends with apt-get when
 * missing; the disk images are built once and kept in .bench/disks.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureDiskFixture, ensureTools, IMAGE_SIZE } from './disk-fixture.ts';
import { benchFileRestore } from './files-bench.ts';

const root = resolve(import.meta.dirname, '..');
const work = join(root, '.bench');
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

interface Measure {
  seconds: number;
  peakRssMiB: number;
  stdout: string;
}

/** Runs a command under GNU time for wall-clock seconds and peak resident memory. */
function measure(label: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd = work): Measure {
  const timeFile = join(work, 'time.txt');
  log(label);
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M', '-o', timeFile, command, ...args], {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 ** 2,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (result.status !== 0) throw new Error(`${label} failed (exit ${result.status}): ${command} ${args.join(' ')}`);
  const [seconds, rssKiB] = readFileSync(timeFile, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
  return { seconds, peakRssMiB: rssKiB / 1024, stdout: result.stdout };
}

function dirBytes(path: string): number {
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split(/\s+/)[0]);
}

/**
 * Reads a file once so that both tools start from the same warm page cache, and writes back what
 * the copy before left dirty, so that no tool's fsyncs wait on that writeback.
 */
function warm(path: string): void {
  execFileSync('cat', [path], { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 0 });
  execFileSync('sync');
}

function sameContent(a: string, b: string): boolean {
  return spawnSync('cmp', ['-s', a, b]).status === 0;
}

/** The total_duration restic reports in its JSON summary line. */
function resticDuration(m: Measure): number {
  const summary = m.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
    .find((msg) => msg.message_type === 'summary');
  return summary.total_duration;
}

async function main(): Promise<void> {
  ensureTools(log);
  const disks = ensureDiskFixture(join(work, 'disks'), log);
  const changedShare = disks.changedBytes / IMAGE_SIZE;
  log(
    `changed copy differs in ${(disks.changedBytes / 1024 ** 2).toFixed(1)} MiB (${(changedShare * 100).toFixed(2)}% of the image)`,
  );

  const run = join(work, 'run');
  rmSync(run, { recursive: true, force: true });
  mkdirSync(join(run, 'src'), { recursive: true });
  const source = join(run, 'src', 'disk.img');
  const passwordEnv = { GOLDSNAP_PASSWORD: 'bench-passphrase', RESTIC_PASSWORD: 'bench-passphrase' };

  // Goldsnap
  const gsRepo = join(run, 'goldsnap-repo');
  const node = join(root, 'node_modules', '.bin', 'node');
  const goldsnap = (args: string[]): [string, string[]] => [
    node,
    [
      '--disable-warning=ExperimentalWarning',
      join(root, 'src', 'cli', 'main.ts'),
      'repo',
      ...args,
      '--repo',
      gsRepo,
      '--json',
    ],
  ];
  execFileSync(...goldsnap(['init']), { env: { ...process.env, ...passwordEnv }, stdio: 'ignore' });

  execFileSync('cp', ['--sparse=always', disks.base, source]);
  warm(source);
  const gsFull = measure(
    'goldsnap full backup',
    ...goldsnap(['backup-image', source, '--name', 'disk.img', '--source', 'bench']),
    passwordEnv,
  );
  const fullId = JSON.parse(gsFull.stdout).snapshot as string;
  execFileSync('cp', ['--sparse=always', disks.changed, source]);
  warm(source);
  const gsIncr = measure(
    'goldsnap incremental (changed ranges given)',
    ...goldsnap([
      'backup-image',
      source,
      '--name',
      'disk.img',
      '--source',
      'bench',
      '--parent',
      fullId,
      '--changed',
      disks.rangesFile,
    ]),
    passwordEnv,
  );
  const incrId = JSON.parse(gsIncr.stdout).snapshot as string;
  const gsTarget = join(run, 'goldsnap-restored.img');
  const gsRestore = measure('goldsnap restore', ...goldsnap(['restore-image', incrId, gsTarget]), passwordEnv);
  const gsSize = dirBytes(gsRepo);
  if (!sameContent(gsTarget, disks.changed)) throw new Error('goldsnap restore differs from the source image');
  rmSync(gsTarget);

  // restic, with compression (repository format 2), the same source path and the same warm cache
  const resticEnv = {
    ...passwordEnv,
    RESTIC_REPOSITORY: join(run, 'restic-repo'),
    RESTIC_CACHE_DIR: join(run, 'restic-cache'),
  };
  execFileSync('restic', ['init', '--repository-version', '2'], {
    env: { ...process.env, ...resticEnv },
    stdio: 'ignore',
  });
  execFileSync('cp', ['--sparse=always', disks.base, source]);
  warm(source);
  const rsFull = measure(
    'restic full backup',
    'restic',
    ['backup', '--json', '--host', 'bench', 'disk.img'],
    resticEnv,
    join(run, 'src'),
  );
  execFileSync('cp', ['--sparse=always', disks.changed, source]);
  warm(source);
  const rsIncr = measure(
    'restic incremental',
    'restic',
    ['backup', '--json', '--host', 'bench', 'disk.img'],
    resticEnv,
    join(run, 'src'),
  );
  const rsTarget = join(run, 'restic-restored');
  const rsRestore = measure('restic restore', 'restic', ['restore', 'latest', '--target', rsTarget], resticEnv);
  const rsSize = dirBytes(resticEnv.RESTIC_REPOSITORY);
  if (!sameContent(join(rsTarget, 'disk.img'), disks.changed))
    throw new Error('restic restore differs from the source image');
  rmSync(rsTarget, { recursive: true });

  const rows = [
    {
      what: 'full backup (s)',
      goldsnap: gsFull.seconds,
      restic: rsFull.seconds,
      ratio: rsFull.seconds / gsFull.seconds,
      target: 2,
    },
    {
      what: 'incremental (s)',
      goldsnap: gsIncr.seconds,
      restic: rsIncr.seconds,
      ratio: rsIncr.seconds / gsIncr.seconds,
      target: 20,
    },
    // Both tools' own account of the backup, from an open repository to the saved snapshot: without
    // process start-up and key derivation, which dominate a 2% incremental of a 2 GiB disk.
    {
      what: 'incremental, in-tool (s)',
      goldsnap: JSON.parse(gsIncr.stdout).seconds,
      restic: resticDuration(rsIncr),
      ratio: resticDuration(rsIncr) / JSON.parse(gsIncr.stdout).seconds,
      target: undefined,
    },
    {
      what: 'restore (s)',
      goldsnap: gsRestore.seconds,
      restic: rsRestore.seconds,
      ratio: rsRestore.seconds / gsRestore.seconds,
      target: 2,
    },
    {
      what: 'repository (MiB)',
      goldsnap: gsSize / 1024 ** 2,
      restic: rsSize / 1024 ** 2,
      ratio: rsSize / gsSize,
      target: 1,
    },
    {
      what: 'peak RSS full (MiB)',
      goldsnap: gsFull.peakRssMiB,
      restic: rsFull.peakRssMiB,
      ratio: rsFull.peakRssMiB / gsFull.peakRssMiB,
      target: undefined,
    },
    {
      what: 'peak RSS restore (MiB)',
      goldsnap: gsRestore.peakRssMiB,
      restic: rsRestore.peakRssMiB,
      ratio: rsRestore.peakRssMiB / gsRestore.peakRssMiB,
      target: undefined,
    },
  ];
  const restic = execFileSync('restic', ['version'], { encoding: 'utf8' }).trim();
  const header = `2 GiB ext4 image of Debian bookworm, ${(changedShare * 100).toFixed(2)}% changed; ${restic}; ratio = restic / goldsnap (higher is better for goldsnap)`;
  console.log(header);
  console.log(
    `${'measure'.padEnd(24)}${'goldsnap'.padStart(10)}${'restic'.padStart(10)}${'ratio'.padStart(9)}  target`,
  );
  for (const r of rows) {
    const verdict = r.target === undefined ? '' : `≥${r.target}× ${r.ratio >= r.target ? 'met' : 'MISSED'}`;
    console.log(
      `${r.what.padEnd(24)}${r.goldsnap.toFixed(1).padStart(10)}${r.restic.toFixed(1).padStart(10)}${(`${r.ratio.toFixed(2)}×`).padStart(9)}  ${verdict}`,
    );
  }

  // File-level restore: a file or a listing reads a few chunks, not the image.
  const files = await benchFileRestore({
    parentImage: disks.changed,
    parentId: incrId,
    repo: gsRepo,
    passphrase: passwordEnv.GOLDSNAP_PASSWORD,
    restoreSeconds: gsRestore.seconds,
    work: run,
    node,
    cli: join(root, 'src', 'cli', 'main.ts'),
    log,
  });
  console.log(`\nfile-level restore from the 2 GiB image (goldsnap repo files), against restoring the whole image`);
  console.log(`${'measure'.padEnd(24)}${'seconds'.padStart(10)}${'read MiB'.padStart(10)}`);
  for (const f of files)
    console.log(`${f.what.padEnd(24)}${f.seconds.toFixed(1).padStart(10)}${f.readMiB.toFixed(1).padStart(10)}`);
  writeFileSync(
    join(work, 'results.json'),
    JSON.stringify(
      { when: new Date().toISOString(), header, changedBytes: disks.changedBytes, rows, fileRestore: files },
      null,
      2,
    ),
  );
}

await main();
