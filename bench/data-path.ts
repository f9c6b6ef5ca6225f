/**
 * `npm run bench:data-path`: the product's real data path against `goldsnap repo backup-image` on
 * the same bytes, in the same run on the same machine (issue 9).
 *
 * A 2 GiB disk goes into a `goldsnap emulator` process (uploaded the way Azure takes a disk: Put
 * Page on an Upload disk), each repetition gets a copy-on-write copy of it attached to a new VM, and
 * a fresh `goldsnap server` (own catalog and repository, the emulator given by GOLDSNAP_EMULATOR)
 * backs it up: a full run, then about 2% of the disk is rewritten in scattered 64 KiB writes through
 * the emulator's data API and an incremental run follows. The peer is `goldsnap repo backup-image`
 * of the same image, full, then the changed image with `--changed` ranges, into a fresh repository.
 *
 * The disk is .bench/disks' ext4 image of a Debian tree (bench/disk-fixture.ts) when present, else
 * deterministic mixed data: 1 MiB regions of zeros, log-like text and incompressible bytes.
 *
 * Figures: MiB/s of the disk's size (full) and of the changed bytes (incremental), for the proxy's
 * transfer (claim to complete, from its log line) and the whole run (API start to succeeded:
 * snapshot, transfer, commit, promote), against the peer's own time. Medians of DATA_PATH_REPEATS
 * (default 3). Prints a table and writes .bench/data-path.json. `--cpu-prof` writes CPU profiles of
 * the server, its proxies and the emulator to .bench/data-path/profiles.
 *
 * Knobs for parallel disks: DATA_PATH_DISKS (default 1) gives each VM that many copies of the disk
 * (an OS disk and data disks), so one run transfers them all; DATA_PATH_PROXY_JOBS is passed as the
 * server's --proxy-jobs (default: the server's). DATA_PATH_SIZE_MIB (default 2048) makes a smaller
 * generated disk (the ext4 fixture is used only at the default size). With several disks, the
 * transfer row is the disks' bytes over the sum of their transfer times (per-transfer speed), the
 * whole-run row is all the disks' bytes over the run's time, and the peer backs the image up once
 * per disk, one after the other.
 */
import { execFile as execFileCb, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { createCipheriv } from 'node:crypto';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { request } from 'node:https';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { ComputeManagementClient } from '@azure/arm-compute';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import { fixedVhdFooter } from '../src/cloud/vhd-footer.ts';
import { emulatorClientOptions, readConnectionInfo, type EmulatorConnectionInfo } from '../src/emulator/client.ts';
import { xorshift } from './disk-fixture.ts';

const execFile = promisify(execFileCb);
const root = resolve(import.meta.dirname, '..');
const work = join(root, '.bench', 'data-path');
const BIN = join(root, 'bin', 'goldsnap');
const MiB = 1024 ** 2;
const SIZE = Number(process.env.DATA_PATH_SIZE_MIB ?? 2048) * MiB;
const CUSTOM_SIZE = SIZE !== 2 * 1024 ** 3;
const DISKS = Number(process.env.DATA_PATH_DISKS ?? 1);
const PROXY_JOBS = process.env.DATA_PATH_PROXY_JOBS;
const WRITE = 64 * 1024;
const REPEATS = Number(process.env.DATA_PATH_REPEATS ?? 3);
const PROFILE = process.argv.includes('--cpu-prof');
const RG = 'rg-bench';
const REGION = 'westeurope';
const PASSWORD = 'bench-passphrase';
const poll = { updateIntervalInMs: 50 };
const log = (line: string) => process.stderr.write(`data-path: ${line}\n`);

interface Disks {
  base: string;
  changed: string;
  rangesFile: string;
  ranges: Array<{ offset: number; length: number }>;
  changedBytes: number;
  kind: string;
}

// ------------------------------------------------------------------ the disk and its changes

const WORDS =
  'request served user session cache miss hit upstream timeout retry connection pool query rows ms status ok error warn info debug GET POST /api/orders /api/users /health worker job queued done kernel systemd'.split(
    ' ',
  );

function textPool(bytes: number): Buffer {
  const random = xorshift(0x7e57);
  const lines: string[] = [];
  let size = 0;
  for (let n = 0; size < bytes; n++) {
    const words = Array.from({ length: 6 + (random() % 10) }, () => WORDS[random() % WORDS.length]);
    const line = `2026-11-24T${String(n % 24).padStart(2, '0')}:${String(random() % 60).padStart(2, '0')}:${String(random() % 60).padStart(2, '0')}.${random() % 1000}Z pid=${random() % 65536} ${words.join(' ')} id=${random().toString(16)}\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

/** Incompressible bytes, the same for the same seed (AES-CTR keystream). */
function noise(length: number, seed: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(seed >>> 0, 12);
  iv.writeUInt32BE(0x5eed, 0);
  const c = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), iv);
  return c.update(Buffer.alloc(length));
}

/** Log-like text, unique per `seed` (a stamp every 4 KiB), compressible as logs are. */
function text(pool: Buffer, length: number, seed: number): Buffer {
  const random = xorshift(seed);
  const out = Buffer.alloc(length);
  for (let at = 0; at < length; ) {
    const from = random() % (pool.length - 64 * 1024);
    const n = Math.min(length - at, 16 * 1024 + (random() % (48 * 1024)));
    pool.copy(out, at, from, from + n);
    at += n;
  }
  for (let at = 0; at + 16 <= length; at += 4096) out.write(`#${seed.toString(16)}-${at.toString(16)}#`, at, 'latin1');
  return out;
}

/**
 * 2 GiB of 1 MiB regions: 35% zeros (never written), 40% log-like text, 25% incompressible; and a
 * copy in which 2% of the disk is rewritten by scattered 64 KiB writes (text or incompressible).
 */
function generatedDisks(dir: string): Disks {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, 'base.img');
  const changed = join(dir, 'changed.img');
  const rangesFile = join(dir, 'changed-ranges.json');
  const done = join(dir, `generated-v1-${SIZE / MiB}.done`);
  if (!existsSync(done)) {
    rmSync(join(dir, 'generated-v1.done'), { force: true });
    for (const f of readdirSync(dir)) if (f.startsWith('generated-v1-')) rmSync(join(dir, f), { force: true });
    log(`generating the ${SIZE / MiB} MiB disk (deterministic mixed data) and its 2% changed copy`);
    const pool = textPool(8 * MiB);
    const random = xorshift(0xd15c);
    for (const path of [base, changed]) {
      rmSync(path, { force: true });
      const fd = openSync(path, 'w');
      ftruncateSync(fd, SIZE);
      closeSync(fd);
    }
    const fds = [openSync(base, 'r+'), openSync(changed, 'r+')];
    for (let region = 0; region < SIZE / MiB; region++) {
      const r = random() % 100;
      if (region > 0 && r < 35) continue;
      const buf = region === 0 || r < 75 ? text(pool, MiB, region + 1) : noise(MiB, region + 1);
      for (const fd of fds) writeSync(fd, buf, 0, MiB, region * MiB);
    }
    const count = Math.round((SIZE * 0.02) / WRITE);
    const offsets = new Set<number>();
    while (offsets.size < count) offsets.add((random() % (SIZE / WRITE)) * WRITE);
    const sorted = [...offsets].sort((a, b) => a - b);
    for (const offset of sorted) {
      const buf = random() % 2 ? text(pool, WRITE, offset / WRITE + 0x10000) : noise(WRITE, offset / WRITE + 0x10000);
      writeSync(fds[1]!, buf, 0, WRITE, offset);
    }
    for (const fd of fds) closeSync(fd);
    const ranges: Array<{ offset: number; length: number }> = [];
    for (const offset of sorted) {
      const last = ranges[ranges.length - 1];
      if (last && last.offset + last.length === offset) last.length += WRITE;
      else ranges.push({ offset, length: WRITE });
    }
    writeFileSync(rangesFile, JSON.stringify(ranges));
    writeFileSync(done, '');
  }
  const ranges = JSON.parse(readFileSync(rangesFile, 'utf8')) as Disks['ranges'];
  return {
    base,
    changed,
    rangesFile,
    ranges,
    changedBytes: ranges.reduce((n, r) => n + r.length, 0),
    kind: 'generated mixed data (35% zero, 40% text, 25% incompressible MiB regions)',
  };
}

function benchDisks(): Disks {
  const fixture = join(root, '.bench', 'disks');
  if (!CUSTOM_SIZE && existsSync(join(fixture, 'fixture-v3.done'))) {
    const rangesFile = join(fixture, 'changed-ranges.json');
    const ranges = JSON.parse(readFileSync(rangesFile, 'utf8')) as Disks['ranges'];
    return {
      base: join(fixture, 'base.img'),
      changed: join(fixture, 'changed.img'),
      rangesFile,
      ranges,
      changedBytes: ranges.reduce((n, r) => n + r.length, 0),
      kind: "the bench's ext4 image of a Debian tree (.bench/disks)",
    };
  }
  return generatedDisks(join(root, '.bench', 'data-path-disks'));
}

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  for (let done = 0; done < length; ) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  return buf;
}

// ------------------------------------------------------------------ processes

interface Proc {
  child: ChildProcess;
  out: string;
  exited: Promise<void>;
}

function start(args: string[], env: NodeJS.ProcessEnv, profileName?: string): Proc {
  const nodeOptions = PROFILE && profileName ? `--cpu-prof --cpu-prof-dir=${join(work, 'profiles', profileName)}` : '';
  const child = spawn(BIN, args, {
    env: { ...process.env, ...env, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const p: Proc = { child, out: '', exited: new Promise((ok) => child.on('exit', () => ok())) };
  const onData = (d: Buffer) => {
    p.out += d.toString();
    if (process.env.DATA_PATH_VERBOSE) process.stderr.write(d);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return p;
}

async function waitFor(p: Proc, pattern: RegExp, from = 0): Promise<RegExpExecArray> {
  for (;;) {
    const m = pattern.exec(p.out.slice(from));
    if (m) return m;
    if (p.child.exitCode !== null || p.child.signalCode !== null)
      throw new Error(`process exited while waiting for ${pattern}:\n${p.out.slice(-3000)}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  await p.exited;
}

/** Runs the CLI to its end without blocking this process (the server's log keeps being read). */
async function goldsnap(args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; stdout: string }> {
  const t0 = process.hrtime.bigint();
  const child = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((ok) => child.on('close', (c) => ok(c)));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0) throw new Error(`goldsnap ${args.join(' ')} exited ${code}:\n${stderr}\n${stdout}`);
  return { seconds, stdout };
}

/** POST to the emulator's control API (HTTPS, its own CA). */
function emulatorPost(info: EmulatorConnectionInfo, path: string, body: unknown): Promise<unknown> {
  const url = new URL(path, info.armEndpoint);
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((ok, fail) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: info.caCertPem,
        headers: {
          authorization: `Bearer ${info.token}`,
          'content-type': 'application/json',
          'content-length': data.length,
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () =>
          res.statusCode === 200 ? ok(JSON.parse(text)) : fail(new Error(`${path}: ${res.statusCode} ${text}`)),
        );
      },
    );
    req.on('error', fail);
    req.end(data);
  });
}

// ------------------------------------------------------------------ the emulator's disk

async function uploadSource(compute: ComputeManagementClient, info: EmulatorConnectionInfo, disks: Disks) {
  const o = emulatorClientOptions(info);
  const created = await compute.disks.beginCreateOrUpdateAndWait(
    RG,
    'bench-source',
    {
      location: REGION,
      osType: 'Linux',
      hyperVGeneration: 'V2',
      creationData: { createOption: 'Upload', uploadSizeBytes: SIZE + 512 },
    },
    poll,
  );
  const { accessSAS } = await compute.disks.beginGrantAccessAndWait(
    RG,
    'bench-source',
    { access: 'Write', durationInSeconds: 7200 },
    poll,
  );
  const blob = new PageBlobClient(accessSAS!, new AnonymousCredential(), o.blob);
  const fd = openSync(disks.base, 'r');
  const PIECE = 4 * MiB;
  let next = 0;
  const worker = async () => {
    for (;;) {
      const offset = next;
      next += PIECE;
      if (offset >= SIZE) return;
      const buf = readAt(fd, offset, PIECE);
      // The upload disk reads as zeros where nothing is written: skip empty 64 KiB pieces.
      for (let at = 0; at < PIECE; ) {
        while (at < PIECE && isZero(buf, at, WRITE)) at += WRITE;
        let end = at;
        while (end < PIECE && !isZero(buf, end, WRITE)) end += WRITE;
        if (end > at) await blob.uploadPages(buf.subarray(at, end), offset + at, end - at);
        at = end;
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  closeSync(fd);
  const footer = fixedVhdFooter(SIZE);
  await blob.uploadPages(footer, SIZE, footer.length);
  await compute.disks.beginRevokeAccessAndWait(RG, 'bench-source', poll);
  return created.id!;
}

const ZERO = Buffer.alloc(WRITE);
function isZero(buf: Buffer, at: number, n: number): boolean {
  return buf.compare(ZERO, 0, n, at, at + n) === 0;
}

/** The VM's disks: the OS disk, then DATA_PATH_DISKS - 1 data disks. */
function diskNames(vm: string): string[] {
  return Array.from({ length: DISKS }, (_, i) => (i === 0 ? `${vm}-os` : `${vm}-data${i}`));
}

/** A VM whose disks are copy-on-write copies of the uploaded disk. */
async function benchVm(compute: ComputeManagementClient, sourceId: string, name: string): Promise<void> {
  const copy = (diskName: string) =>
    compute.disks.beginCreateOrUpdateAndWait(
      RG,
      diskName,
      {
        location: REGION,
        osType: 'Linux',
        hyperVGeneration: 'V2',
        creationData: { createOption: 'Copy', sourceResourceId: sourceId },
      },
      poll,
    );
  const [disk, ...data] = await Promise.all(diskNames(name).map(copy));
  await compute.virtualMachines.beginCreateOrUpdateAndWait(
    RG,
    name,
    {
      location: REGION,
      hardwareProfile: { vmSize: 'Standard_D2s_v5' },
      storageProfile: {
        osDisk: { osType: 'Linux', createOption: 'Attach', managedDisk: { id: disk!.id! } },
        dataDisks: data.map((d, i) => ({ lun: i, createOption: 'Attach', managedDisk: { id: d.id! } })),
      },
    },
    poll,
  );
}

/** The VM writes what differs between the base and changed images, through the emulator's data API. */
async function applyChanges(info: EmulatorConnectionInfo, vm: string, disks: Disks): Promise<void> {
  const fd = openSync(disks.changed, 'r');
  let batch: Array<{ diskName: string; offset: number; dataBase64: string }> = [];
  let bytes = 0;
  const flush = async () => {
    if (batch.length) await emulatorPost(info, `/_emulator/vms/${vm}/writes`, { writes: batch });
    batch = [];
    bytes = 0;
  };
  for (const r of disks.ranges) {
    for (let at = 0; at < r.length; at += WRITE) {
      const n = Math.min(WRITE, r.length - at);
      const dataBase64 = readAt(fd, r.offset + at, n).toString('base64');
      for (const diskName of diskNames(vm)) {
        batch.push({ diskName, offset: r.offset + at, dataBase64 });
        bytes += n;
      }
      if (bytes >= 2 * MiB) await flush();
    }
  }
  await flush();
  closeSync(fd);
}

// ------------------------------------------------------------------ measurements

interface Rep {
  productFullTransfer: number;
  productFullRun: number;
  productIncrTransfer: number;
  productIncrRun: number;
  peerFull: number;
  peerFullWall: number;
  peerIncr: number;
  peerIncrWall: number;
  load: number;
}

function transferSeconds(serverLog: string, disk: string, from: number): number {
  const m = new RegExp(`transfer ${disk} of run \\w+ done: read [\\d.]+ MiB in ([\\d.]+) s`).exec(
    serverLog.slice(from),
  );
  if (!m) throw new Error(`no transfer line for ${disk} in the server's log:\n${serverLog.slice(-3000)}`);
  return Number(m[1]);
}

async function productRep(info: EmulatorConnectionInfo, connectionFile: string, vm: string, disks: Disks) {
  const data = join(work, `server-${vm}`);
  rmSync(data, { recursive: true, force: true });
  const server = start(
    // A proxy writes its CPU profile only when it exits on its own (idle), not when killed.
    [
      'server',
      '--data',
      data,
      '--port',
      '0',
      '--proxy-idle',
      PROFILE ? '2' : '120',
      '--scheduler-interval',
      '3600000',
      ...(PROXY_JOBS ? ['--proxy-jobs', PROXY_JOBS] : []),
    ],
    { GOLDSNAP_EMULATOR: connectionFile, GOLDSNAP_PASSWORD: PASSWORD, DATABASE_URL: '' },
    'server',
  );
  try {
    const url = (await waitFor(server, /listening on (http:[^\s"]+)/))[1]!;
    const env = { GOLDSNAP_DATA: data, GOLDSNAP_SERVER: url };
    const run = async (label: string) => {
      const from = server.out.length;
      log(`${vm}: ${label} run through goldsnap server`);
      const r = await goldsnap(['runs', 'start', vm, '--wait', '--json'], env);
      const step = (JSON.parse(r.stdout) as { step: string }).step;
      if (step !== 'succeeded') throw new Error(`${vm}: ${label} run ended ${step}:\n${r.stdout}`);
      // The proxy's lines may reach this process's pipe just after the run is seen to end.
      let transfer = 0;
      for (const disk of diskNames(vm)) {
        await waitFor(server, new RegExp(`transfer ${disk} of run \\w+ done`), from);
        transfer += transferSeconds(server.out, disk, from);
      }
      return { run: r.seconds, transfer };
    };
    const full = await run('full');
    log(`${vm}: writing ${(disks.changedBytes / MiB).toFixed(1)} MiB of scattered changes`);
    await applyChanges(info, vm, disks);
    const incr = await run('incremental');
    if (PROFILE) await waitFor(server, /proxy for \S+ \(pid \d+\) ended: exit 0/, server.out.lastIndexOf('done: read'));
    return { full, incr };
  } finally {
    await stop(server);
  }
}

async function peerRep(name: string, disks: Disks) {
  const repo = join(work, `peer-${name}`);
  rmSync(repo, { recursive: true, force: true });
  const env = { GOLDSNAP_PASSWORD: PASSWORD };
  await goldsnap(['repo', 'init', '--repo', repo], env);
  log(`${name}: repo backup-image (full)`);
  const full = await goldsnap(
    ['repo', 'backup-image', disks.base, '--repo', repo, '--name', 'os', '--source', 'bench-disk', '--json'],
    env,
  );
  const fullOut = JSON.parse(full.stdout) as { snapshot: string; seconds: number };
  log(`${name}: repo backup-image --changed (incremental)`);
  const incr = await goldsnap(
    [
      'repo',
      'backup-image',
      disks.changed,
      '--repo',
      repo,
      '--name',
      'os',
      '--source',
      'bench-disk',
      '--parent',
      fullOut.snapshot,
      '--changed',
      disks.rangesFile,
      '--json',
    ],
    env,
  );
  const incrOut = JSON.parse(incr.stdout) as { seconds: number };
  rmSync(repo, { recursive: true, force: true });
  return { full: fullOut.seconds, fullWall: full.seconds, incr: incrOut.seconds, incrWall: incr.seconds };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const disks = benchDisks();
  log(
    `disk: ${disks.kind}; ${(disks.changedBytes / MiB).toFixed(1)} MiB changed (${((disks.changedBytes / SIZE) * 100).toFixed(2)}%)`,
  );

  // The uploaded disk is kept between runs (uploading 2 GiB through Put Page, an fsync per 64 KiB
  // extent, takes minutes): each run starts from a hard-linked copy of that emulator's folder,
  // which is safe because extents are immutable, every other file is replaced by rename, and the
  // state journal, appended to, is started afresh by an emulator that finds it hard-linked.
  const seed = join(root, '.bench', 'data-path-emulator');
  const seedMarker = join(seed, 'bench-seed.json');
  // At the default size, the key of the seeds made before DATA_PATH_SIZE_MIB existed.
  const seedKey = `${disks.base} ${disks.kind}${CUSTOM_SIZE ? ` ${SIZE}` : ''}`;
  let sourceId = existsSync(seedMarker)
    ? (JSON.parse(readFileSync(seedMarker, 'utf8')) as { key: string; sourceId: string })
    : undefined;
  if (sourceId?.key !== seedKey) {
    rmSync(seed, { recursive: true, force: true });
    const uploader = start(['emulator', '--data', seed, '--port', '0'], {});
    try {
      const file = JSON.parse((await waitFor(uploader, /^\{"event":"ready".*$/m))[0]).connectionFile as string;
      const info = readConnectionInfo(file);
      const o = emulatorClientOptions(info);
      log('uploading the disk into the emulator (Put Page on an Upload disk; kept for the next runs)');
      const t0 = Date.now();
      const id = await uploadSource(
        new ComputeManagementClient(o.credential, o.subscriptionId, o.compute),
        info,
        disks,
      );
      log(`uploaded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      sourceId = { key: seedKey, sourceId: id };
    } finally {
      await stop(uploader);
    }
    writeFileSync(seedMarker, JSON.stringify(sourceId));
  }
  await execFile('cp', ['-al', seed, join(work, 'emulator')]);

  const emulator = start(['emulator', '--data', join(work, 'emulator'), '--port', '0'], {}, 'emulator');
  const reps: Rep[] = [];
  try {
    const connectionFile = JSON.parse((await waitFor(emulator, /^\{"event":"ready".*$/m))[0]).connectionFile as string;
    const info = readConnectionInfo(connectionFile);
    const o = emulatorClientOptions(info);
    const compute = new ComputeManagementClient(o.credential, o.subscriptionId, o.compute);
    for (let i = 1; i <= REPEATS; i++) {
      const vm = `bench-${i}`;
      await benchVm(compute, sourceId.sourceId, vm);
      const load = loadavg()[0]!;
      const product = await productRep(info, connectionFile, vm, disks);
      const peer = await peerRep(vm, disks);
      // The peer backs up one disk; the VM has DISKS of them, backed up one after the other.
      for (const k of ['full', 'fullWall', 'incr', 'incrWall'] as const) peer[k] *= DISKS;
      const rep: Rep = {
        productFullTransfer: product.full.transfer,
        productFullRun: product.full.run,
        productIncrTransfer: product.incr.transfer,
        productIncrRun: product.incr.run,
        peerFull: peer.full,
        peerFullWall: peer.fullWall,
        peerIncr: peer.incr,
        peerIncrWall: peer.incrWall,
        load,
      };
      log(`repetition ${i}: ${JSON.stringify(rep)}`);
      reps.push(rep);
    }
  } finally {
    await stop(emulator);
  }

  const med = (k: keyof Rep) => median(reps.map((r) => r[k]));
  const fullMiB = (DISKS * SIZE) / MiB;
  const incrMiB = (DISKS * disks.changedBytes) / MiB;
  const rows = [
    ['full: proxy transfer', fullMiB / med('productFullTransfer'), med('peerFull') / med('productFullTransfer')],
    ['full: whole run', fullMiB / med('productFullRun'), med('peerFull') / med('productFullRun')],
    ['full: repo backup-image', fullMiB / med('peerFull'), 1],
    ['incremental: proxy transfer', incrMiB / med('productIncrTransfer'), med('peerIncr') / med('productIncrTransfer')],
    ['incremental: whole run', incrMiB / med('productIncrRun'), med('peerIncr') / med('productIncrRun')],
    ['incremental: repo backup-image', incrMiB / med('peerIncr'), 1],
  ] as const;
  const load = loadavg();
  const lines = [
    `data path, ${REPEATS} repetitions (medians), ${DISKS} disk(s) of ${SIZE / MiB} MiB of ${disks.kind}, ${incrMiB.toFixed(1)} MiB changed in all, proxy jobs ${PROXY_JOBS ?? 'default'}`,
    `${'measure'.padEnd(34)}${'MiB/s'.padStart(10)}${'of backup-image'.padStart(18)}`,
    ...rows.map(
      ([label, mibs, ratio]) =>
        `${label.padEnd(34)}${mibs.toFixed(1).padStart(10)}${`${(ratio * 100).toFixed(0)}%`.padStart(18)}`,
    ),
    `load average at the end: ${load.map((l) => l.toFixed(2)).join(' ')}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  writeFileSync(
    join(root, '.bench', 'data-path.json'),
    `${JSON.stringify(
      {
        disk: { sizeBytes: SIZE, kind: disks.kind, changedBytes: disks.changedBytes },
        disksPerVm: DISKS,
        proxyJobs: PROXY_JOBS ?? null,
        repetitions: reps,
        medians: Object.fromEntries(
          rows.map(([label, mibs, ratio]) => [label, { mibPerSecond: mibs, ofBackupImage: ratio }]),
        ),
        loadAverage: load,
      },
      null,
      2,
    )}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`data-path: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
