/**
 * `npm run bench`: the one place Goldsnap's performance is measured, against restic and borg
 * (Debian's packages, installed with apt-get when missing) in the same run on the same machine.
 * Prints one table per scenario with ratios peer/goldsnap and writes every figure and every raw
 * run to .bench/results.json.
 *
 * 1. 2 GiB ext4 image of a Debian tree, ~2% changed: full backup, incremental (goldsnap given the
 *    changed ranges), restore (each tool followed by `sync FILE`, so all are timed until the image is
 *    on disk), repository size, peak RSS. Medians of BENCH_RUNS (3) runs, each on fresh repositories.
 * 2. The machine's floor (bench/floor.ts): the primitives' throughput measured in this process,
 *    and Goldsnap's full backup as a share of it.
 * 3. Large disk (bench/large-disk.ts): a 64 GiB sparse image with 8 GiB of data, 0.1% and 2% of it
 *    changed as scattered 64 KiB writes: incremental time, bytes read and repository growth.
 *    restic and borg read the whole 64 GiB on every backup, so there the full backups and the
 *    peers' incrementals run once; Goldsnap's incrementals run BENCH_RUNS times (each with a new
 *    seeded change set) and count by their median. BENCH_LARGE=0 skips this part.
 * 4. Chunk-size study on the large disk: Goldsnap with 256 KiB, 1 MiB and 4 MiB chunks.
 * 5. File-level restore (bench/files-bench.ts).
 * 6. The real data path (bench/data-path.ts, also `npm run bench:data-path`): a 2 GiB disk in the
 *    emulator backed up through `goldsnap server`, against `repo backup-image` on the same bytes.
 * 7. The control plane at scale (bench/control-plane.ts, also `npm run bench:control-plane`):
 *    1,000 VMs with 3 small disks across 5 regions, one policy (CP_VMS and its other knobs).
 *
 * Knobs for a short trial: BENCH_RUNS, BENCH_SMALL=0, BENCH_LARGE=0, BENCH_LARGE_GIB (64),
 * BENCH_LARGE_DATA_GIB (8), BENCH_CHUNK_STUDY=0, BENCH_PEERS=0 (the large disk without restic and
 * borg), BENCH_DATA_PATH=0, BENCH_CONTROL_PLANE=0.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { ensureDiskFixture, ensureTools, IMAGE_SIZE } from './disk-fixture.ts';
import { benchFileRestore } from './files-bench.ts';
import { measureFloor } from './floor.ts';
import { applyChanges, changeSet, ensureLargeDisk, undoChanges, warmExtents } from './large-disk.ts';
import { copySparse, dirBytes, GiB, log, measure, median, MiB, sameContent, uptime, warm } from './measure.ts';
import { type BackupResult, makeTool, sizeLabel, TOOLS, type ToolName } from './tools.ts';

const root = resolve(import.meta.dirname, '..');
// BENCH_DIR: another folder for a second, separate bench (its own disks, runs and results.json).
const work = process.env.BENCH_DIR ? resolve(process.env.BENCH_DIR) : join(root, '.bench');
const ctx = { root, work };
const env = (name: string, fallback: number) =>
  process.env[name] === undefined ? fallback : Number(process.env[name]);
const RUNS = env('BENCH_RUNS', 3);
const SMALL = env('BENCH_SMALL', 1) !== 0;
const LARGE = env('BENCH_LARGE', 1) !== 0;
const CHUNK_STUDY = env('BENCH_CHUNK_STUDY', 1) !== 0;
const PEERS = env('BENCH_PEERS', 1) !== 0;
const DATA_PATH = env('BENCH_DATA_PATH', 1) !== 0;
const CONTROL_PLANE = env('BENCH_CONTROL_PLANE', 1) !== 0;
const LARGE_SIZE = env('BENCH_LARGE_GIB', 64) * GiB;
const LARGE_DATA = env('BENCH_LARGE_DATA_GIB', 8) * GiB;
const LEVELS = [0.001, 0.02];

interface Row {
  what: string;
  /** Median per tool. */
  values: Partial<Record<ToolName, number>>;
  /** Goal on restic/goldsnap, from issue 9, when there is one. */
  goal?: number;
}

/** Prints a table: the figures, then peer/goldsnap for each peer. */
function printTable(title: string, rows: Row[], decimals = 1): void {
  console.log(`\n${title}`);
  const peers = TOOLS.filter((t) => t !== 'goldsnap');
  console.log(
    `${'measure'.padEnd(30)}${TOOLS.map((t) => t.padStart(11)).join('')}${peers.map((p) => `${p}/gs`.padStart(11)).join('')}  goal (restic/gs)`,
  );
  for (const r of rows) {
    const cell = (v?: number) => (v === undefined ? '—' : v.toFixed(decimals)).padStart(11);
    const gs = r.values.goldsnap;
    const ratios = peers.map((p) => {
      const v = r.values[p];
      return (v === undefined || !gs ? '—' : `${(v / gs).toFixed(2)}×`).padStart(11);
    });
    const rs = r.values.restic;
    const goal =
      r.goal === undefined || rs === undefined || !gs
        ? ''
        : `${r.goal < 1 ? `gs ≤${fix(1 / r.goal)}× restic` : `≥${r.goal}×`} ${rs / gs >= r.goal ? 'met' : 'MISSED'}`;
    console.log(`${r.what.padEnd(30)}${TOOLS.map((t) => cell(r.values[t])).join('')}${ratios.join('')}  ${goal}`);
  }
}

function printPlain(title: string, header: string[], rows: Array<Array<string | number>>): void {
  console.log(`\n${title}`);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)) + 2);
  const line = (cells: Array<string | number>) =>
    cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

const fix = (n: number, d = 1) => n.toFixed(d);

/** Scenario 1: the 2 GiB Debian image, RUNS times on fresh repositories. */
async function smallScenario(results: Record<string, unknown>) {
  const disks = ensureDiskFixture(join(work, 'disks'), log);
  const changedShare = disks.changedBytes / IMAGE_SIZE;
  log(`2 GiB image: the changed copy differs in ${fix(disks.changedBytes / MiB)} MiB (${fix(changedShare * 100, 2)}%)`);
  const raw: Array<Record<string, unknown>> = [];
  const per = (tool: ToolName) => raw.filter((r) => r.tool === tool);
  let last: { repoDir: string; incrId: string } | undefined;
  for (let run = 0; run < RUNS; run++) {
    for (const name of TOOLS) {
      const dir = join(work, 'run', 'small', `r${run}`, name);
      const src = join(dir, 'src');
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(src, { recursive: true });
      const tool = makeTool(name, dir, ctx);
      tool.init();
      copySparse(disks.base, join(src, 'disk.img'));
      warm(join(src, 'disk.img'));
      const full = tool.backup(src, `full backup (run ${run + 1}/${RUNS})`);
      copySparse(disks.changed, join(src, 'disk.img'));
      warm(join(src, 'disk.img'));
      const incr = tool.backup(src, `incremental (run ${run + 1}/${RUNS})`, {
        parent: full.id,
        rangesFile: disks.rangesFile,
      });
      rmSync(src, { recursive: true });
      const target = join(dir, 'restored.img');
      const restore = tool.restore(incr.id, target);
      // A restore is done when the image is on disk. Goldsnap fsyncs it before it renames it into
      // place; restic and borg leave it to the kernel's writeback. `sync FILE` after each tool
      // times them all to the same point (for Goldsnap it finds nothing left to write).
      const synced = measure(`${name} restore: sync the image`, 'sync', [target], {
        cwd: dir,
        timeFile: join(dir, 'time.txt'),
      });
      if (!sameContent(target, disks.changed)) throw new Error(`${name}'s restore differs from the source image`);
      rmSync(target);
      raw.push({
        tool: name,
        run,
        full: strip(full),
        incr: strip(incr),
        restore: strip(restore),
        restoreSyncSeconds: synced.seconds,
        size: tool.size(),
      });
      if (name === 'goldsnap' && run === RUNS - 1) last = { repoDir: tool.repo, incrId: incr.id };
      else tool.remove();
    }
  }
  type Pick = (r: Record<string, unknown>) => number;
  const med = (pick: Pick) =>
    Object.fromEntries(TOOLS.map((t) => [t, median(per(t).map(pick))])) as Record<ToolName, number>;
  const m = (r: Record<string, unknown>, k: string) => r[k] as Omit<BackupResult, 'stdout'>;
  const rows: Row[] = [
    { what: 'full backup (s)', values: med((r) => m(r, 'full').seconds), goal: 3 },
    { what: 'full backup, in-tool (s)', values: med((r) => m(r, 'full').inToolSeconds) },
    { what: 'incremental (s)', values: med((r) => m(r, 'incr').seconds) },
    { what: 'incremental, in-tool (s)', values: med((r) => m(r, 'incr').inToolSeconds) },
    {
      what: 'restore, to disk (s)',
      values: med((r) => m(r, 'restore').seconds + (r.restoreSyncSeconds as number)),
      goal: 3,
    },
    { what: 'restore, without the sync (s)', values: med((r) => m(r, 'restore').seconds) },
    { what: 'repository (MiB)', values: med((r) => (r.size as number) / MiB), goal: 1 },
    { what: 'peak RSS full (MiB)', values: med((r) => m(r, 'full').peakRssMiB), goal: 1 / 1.5 },
    { what: 'peak RSS incremental (MiB)', values: med((r) => m(r, 'incr').peakRssMiB) },
    { what: 'peak RSS restore (MiB)', values: med((r) => m(r, 'restore').peakRssMiB), goal: 1 / 1.5 },
  ];
  const title =
    `2 GiB ext4 image of Debian bookworm, ${fix(changedShare * 100, 2)}% changed; medians of ${RUNS}; ` +
    `ratio = peer/goldsnap (higher is better for goldsnap); load at end ${uptime()}`;
  printTable(title, rows);
  results.small = { title, changedBytes: disks.changedBytes, rows: rowsJson(rows), raw };
  return {
    disks,
    rows,
    last,
    gsFullMedian: rows[0].values.goldsnap as number,
    gsFullInTool: rows[1].values.goldsnap as number,
    restoreMedian: rows[4].values.goldsnap,
  };
}

/** Scenario 2: the floor of a full backup of the 2 GiB image, in this process. */
function floorScenario(results: Record<string, unknown>, image: string, gsFullSeconds: number, gsInTool: number) {
  log(`floor: timing HMAC-SHA-256, zstd 3, AES-256-GCM, SHA-256 in-process (load ${uptime()})`);
  const floor = measureFloor(image, MiB);
  const share = floor.floorSeconds / gsFullSeconds;
  printPlain(
    `Machine floor for a full backup of the 2 GiB image (${floor.nonZeroChunks} non-zero 1 MiB chunks, ${fix(floor.nonZeroBytes / MiB)} MiB → ${fix(floor.storedBytes / MiB)} MiB after zstd; ${floor.cores} cores; load ${uptime()})`,
    ['primitive (1 thread)', 'MiB/s', 's over the image'],
    [
      ['HMAC-SHA-256 (chunk ids)', fix(floor.mibPerSecond.hmacSha256), fix(floor.seconds.hmacSha256, 2)],
      ['zstd level 3', fix(floor.mibPerSecond.zstd3), fix(floor.seconds.zstd3, 2)],
      ['AES-256-GCM (stored bytes)', fix(floor.mibPerSecond.aes256gcm), fix(floor.seconds.aes256gcm, 2)],
      ['SHA-256 (packs)', fix(floor.mibPerSecond.sha256), fix(floor.seconds.sha256, 2)],
    ],
  );
  const inToolShare = floor.floorSeconds / gsInTool;
  console.log(
    `floor = sum / ${floor.cores} cores = ${fix(floor.floorSeconds, 2)} s; goldsnap full backup ${fix(gsFullSeconds, 2)} s (median) = ${fix(share * 100)}% of the floor's speed (goal ≥85%: ${share >= 0.85 ? 'met' : 'MISSED'}); ` +
      `in-tool (without process start and key derivation) ${fix(gsInTool, 2)} s = ${fix(inToolShare * 100)}%`,
  );
  results.floor = {
    ...floor,
    goldsnapFullSeconds: gsFullSeconds,
    shareOfFloor: share,
    goldsnapFullInToolSeconds: gsInTool,
    inToolShareOfFloor: inToolShare,
  };
}

/** Scenarios 3 and 4: the large sparse disk, every tool, and Goldsnap at three chunk sizes. */
function largeScenario(results: Record<string, unknown>, save: () => void) {
  const disk = ensureLargeDisk(join(work, 'disks'), LARGE_SIZE, LARGE_DATA);
  const dir = join(work, 'run', 'large');
  const src = join(dir, 'src');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(src, { recursive: true });
  const image = join(src, 'disk.img');
  log(`copying the large image (sparse) (load ${uptime()})`);
  copySparse(disk.path, image);
  execFileSync('sync');
  const rangesFile = join(dir, 'ranges.json');
  const sets = LEVELS.map((level, l) =>
    Array.from({ length: RUNS }, (_, run) => {
      const seed = 0x5eed + 1000 * l + run;
      return { level, run, seed, set: changeSet(disk, level, seed) };
    }),
  );
  const configs: Array<{ name: ToolName; chunkSize?: number }> = [
    { name: 'goldsnap', chunkSize: MiB },
    ...(PEERS ? [{ name: 'restic' as const }, { name: 'borg' as const }] : []),
    ...(CHUNK_STUDY
      ? [
          { name: 'goldsnap' as const, chunkSize: 256 * 1024 },
          { name: 'goldsnap' as const, chunkSize: 4 * MiB },
        ]
      : []),
  ];
  const raw: Array<Record<string, unknown>> = [];
  for (const config of configs) {
    const tool = makeTool(config.name, join(dir, `${config.name}${config.chunkSize ?? ''}`), ctx, config.chunkSize);
    tool.init();
    warmExtents(image, disk);
    const full = tool.backup(src, 'large full backup');
    const fullSize = tool.size();
    const indexBytes =
      config.name === 'goldsnap' ? dirBytes(join(tool.repo, 'index')) + dirBytes(join(tool.repo, 'fidx')) : undefined;
    const incrementals: Array<Record<string, unknown>> = [];
    for (const level of sets) {
      for (const { level: share, run, seed, set } of level.slice(0, config.name === 'goldsnap' ? RUNS : 1)) {
        applyChanges(image, set, seed, rangesFile);
        const before = tool.size();
        const incr = tool.backup(src, `large incremental, ${share * 100}% changed (run ${run + 1})`, {
          parent: full.id,
          rangesFile,
        });
        incrementals.push({ share, run, changedBytes: set.bytes, ...strip(incr), storedBytes: tool.size() - before });
        undoChanges(image, disk.path, set);
      }
    }
    raw.push({
      tool: config.name,
      label: tool.label,
      chunkSize: config.chunkSize,
      full: strip(full),
      fullSize,
      indexBytes,
      incrementals,
    });
    tool.remove();
    results.largeRaw = raw; // kept as each tool finishes, should a later one fail
    save();
  }
  rmSync(dir, { recursive: true, force: true });

  type Incr = {
    share: number;
    seconds: number;
    inToolSeconds: number;
    peakRssMiB: number;
    storedBytes: number;
    readBytes?: number;
    changedBytes: number;
  };
  const incrOf = (r: Record<string, unknown>, share: number) =>
    (r.incrementals as Incr[]).filter((i) => i.share === share);
  const medIncr = (r: Record<string, unknown>, share: number, pick: (i: Incr) => number) =>
    median(incrOf(r, share).map(pick));
  const main = (name: ToolName) => raw.find((r) => r.tool === name && (name !== 'goldsnap' || r.chunkSize === MiB));
  const valuesOf = (pick: (r: Record<string, unknown>) => number) =>
    Object.fromEntries(
      TOOLS.filter((t) => main(t)).map((t) => [t, pick(main(t) as Record<string, unknown>)]),
    ) as Partial<Record<ToolName, number>>;
  const full = (r: Record<string, unknown>) => r.full as Omit<BackupResult, 'stdout'>;
  const rows: Row[] = [
    { what: 'full backup (s, once)', values: valuesOf((r) => full(r).seconds) },
    { what: 'repository after full (MiB)', values: valuesOf((r) => (r.fullSize as number) / MiB) },
    { what: 'peak RSS full (MiB)', values: valuesOf((r) => full(r).peakRssMiB) },
  ];
  for (const share of LEVELS) {
    const pct = `${share * 100}%`;
    rows.push(
      {
        what: `${pct}: incremental (s)`,
        values: valuesOf((r) => medIncr(r, share, (i) => i.seconds)),
        goal: share === 0.001 ? 50 : undefined,
      },
      { what: `${pct}: in-tool (s)`, values: valuesOf((r) => medIncr(r, share, (i) => i.inToolSeconds)) },
      { what: `${pct}: stored (MiB)`, values: valuesOf((r) => medIncr(r, share, (i) => i.storedBytes) / MiB) },
      { what: `${pct}: peak RSS (MiB)`, values: valuesOf((r) => medIncr(r, share, (i) => i.peakRssMiB)) },
    );
  }
  const changed = LEVELS.map((s) => `${s * 100}% = ${fix(sets[LEVELS.indexOf(s)][0].set.bytes / MiB)} MiB`).join(', ');
  const title =
    `Large disk: ${LARGE_SIZE / GiB} GiB sparse, ${disk.dataBytes / GiB} GiB of data; scattered 64 KiB writes (${changed}); ` +
    `goldsnap 1 MiB chunks with --changed, incrementals medians of ${RUNS}; full backups and restic/borg incrementals run once ` +
    `(each reads the whole image); load at end ${uptime()}`;
  printTable(title, rows, 2);
  results.large = { title, sizeBytes: LARGE_SIZE, dataBytes: disk.dataBytes, rows: rowsJson(rows), raw };

  const study = raw
    .filter((r) => r.tool === 'goldsnap')
    .sort((a, b) => (a.chunkSize as number) - (b.chunkSize as number))
    .map((r) => {
      const f = full(r);
      const out: Record<string, number | string> = {
        chunkSize: sizeLabel(r.chunkSize as number),
        fullSeconds: f.seconds,
        fullMiBps: disk.dataBytes / MiB / f.inToolSeconds,
        fullRssMiB: f.peakRssMiB,
        repoMiB: (r.fullSize as number) / MiB,
        indexKiB: (r.indexBytes as number) / 1024,
      };
      for (const share of LEVELS) {
        const changedBytes = incrOf(r, share)[0].changedBytes;
        out[`s${share}`] = medIncr(r, share, (i) => i.inToolSeconds);
        out[`read${share}`] = medIncr(r, share, (i) => (i.readBytes ?? 0) / changedBytes);
        out[`stored${share}`] = medIncr(r, share, (i) => i.storedBytes / changedBytes);
        out[`chunks${share}`] = medIncr(r, share, (i) => (i.readBytes ?? 0) / (r.chunkSize as number));
        out[`rss${share}`] = medIncr(r, share, (i) => i.peakRssMiB);
      }
      return out;
    });
  if (study.length > 1) {
    printPlain(
      `Chunk-size study (goldsnap, large disk): full backup once; incrementals in-tool, medians of ${RUNS}; read/stored amplification = bytes read from the image / stored in the repository per byte written; load ${uptime()}`,
      [
        'chunk',
        'full s',
        'full MiB/s',
        'full RSS',
        'repo MiB',
        'index KiB',
        ...LEVELS.flatMap((s) => [`${s * 100}%: s`, 'chunks', 'read amp', 'stored amp', 'RSS']),
      ],
      study.map((s) => [
        s.chunkSize,
        fix(s.fullSeconds as number),
        fix(s.fullMiBps as number),
        fix(s.fullRssMiB as number),
        fix(s.repoMiB as number),
        fix(s.indexKiB as number),
        ...LEVELS.flatMap((l) => [
          fix(s[`s${l}`] as number, 2),
          fix(s[`chunks${l}`] as number, 0),
          `${fix(s[`read${l}`] as number, 2)}×`,
          `${fix(s[`stored${l}`] as number, 2)}×`,
          fix(s[`rss${l}`] as number),
        ]),
      ]),
    );
    results.chunkStudy = study;
  }
}

function strip<T extends { stdout: string }>(m: T): Omit<T, 'stdout'> {
  const { stdout: _stdout, ...rest } = m;
  return rest;
}

function rowsJson(rows: Row[]) {
  return rows.map((r) => ({
    ...r,
    ratios: Object.fromEntries(
      TOOLS.filter((t) => t !== 'goldsnap').map((t) => [
        t,
        (r.values[t] ?? Number.NaN) / (r.values.goldsnap ?? Number.NaN),
      ]),
    ),
  }));
}

/**
 * Runs a bench that is also a script of its own (its tables print as they come) and takes the
 * figures it writes to .bench/<json>.
 */
function separateBench(title: string, script: string, json: string): unknown {
  console.log(`\n${title} (${script}; its knobs are in its header)`);
  const out = join(root, '.bench', json);
  rmSync(out, { force: true });
  execFileSync(join(root, 'node_modules', '.bin', 'node'), [join(root, script)], { stdio: 'inherit' });
  return JSON.parse(readFileSync(out, 'utf8'));
}

async function main(): Promise<void> {
  const started = Date.now();
  ensureTools(log);
  mkdirSync(work, { recursive: true });
  const results: Record<string, unknown> = {
    when: new Date().toISOString(),
    machine: { cores: availableParallelism(), loadAtStart: uptime() },
    config: {
      runs: RUNS,
      small: SMALL,
      large: LARGE,
      largeBytes: LARGE_SIZE,
      largeDataBytes: LARGE_DATA,
      chunkStudy: CHUNK_STUDY,
    },
    tools: {
      restic: execFileSync('restic', ['version'], { encoding: 'utf8' }).trim(),
      borg: execFileSync('borg', ['--version'], { encoding: 'utf8' }).trim(),
    },
  };
  const save = () => writeFileSync(join(work, 'results.json'), JSON.stringify(results, null, 2));
  console.log(
    `goldsnap bench: ${availableParallelism()} cores, load ${uptime()}, ${results.tools && Object.values(results.tools as object).join(', ')}`,
  );
  if (SMALL) {
    const small = await smallScenario(results);
    save();
    floorScenario(results, small.disks.base, small.gsFullMedian, small.gsFullInTool);
    save();
    if (small.last) {
      const files = await benchFileRestore({
        parentImage: small.disks.changed,
        parentId: small.last.incrId,
        repo: small.last.repoDir,
        passphrase: 'bench-passphrase',
        restoreSeconds: small.restoreMedian as number,
        work: join(work, 'run', 'small'),
        goldsnap: join(root, 'bin', 'goldsnap'),
        log,
      });
      printPlain(
        'File-level restore from the 2 GiB image (goldsnap repo files), against restoring the whole image',
        ['measure', 'seconds', 'read MiB'],
        files.map((f) => [f.what, fix(f.seconds), fix(f.readMiB)]),
      );
      results.fileRestore = files;
      save();
    }
    rmSync(join(work, 'run', 'small'), { recursive: true, force: true });
  } else console.log('\n2 GiB scenario, floor and file-level restore skipped (BENCH_SMALL=0)');
  if (LARGE) largeScenario(results, save);
  else console.log('\nlarge-disk scenario and chunk-size study skipped (BENCH_LARGE=0)');
  if (DATA_PATH) {
    results.dataPath = separateBench('The real data path', 'bench/data-path.ts', 'data-path.json');
    save();
  } else console.log('\ndata-path scenario skipped (BENCH_DATA_PATH=0)');
  if (CONTROL_PLANE) {
    results.controlPlane = separateBench('The control plane at scale', 'bench/control-plane.ts', 'control-plane.json');
    save();
  } else console.log('\ncontrol-plane scenario skipped (BENCH_CONTROL_PLANE=0)');
  results.totalSeconds = (Date.now() - started) / 1000;
  results.machine = { ...(results.machine as object), loadAtEnd: uptime() };
  save();
  console.log(
    `\nbench took ${fix((results.totalSeconds as number) / 60)} min; load at end ${uptime()}; figures in .bench/results.json`,
  );
}

await main();
