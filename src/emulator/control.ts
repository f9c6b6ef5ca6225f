import { randomBytes, randomUUID } from 'node:crypto';
import { ArmError, normalizeLocation, PAGE, type EmulatorCore } from './core.ts';
import { keyOf, type DiskRec, type VmRec } from './state.ts';
import type { PageWrite } from './extent-store.ts';
import { hostedSubscription, hostedSubscriptions, inSubscription } from './subscriptions.ts';
import { errorMessage } from '../util/errors.ts';

export type DiskFill = 'os-like' | 'random' | 'zeros';

export interface CreateVmDiskSpec {
  name: string;
  sizeBytes: number;
  role: 'os' | 'data';
  /** Data disks: LUN (default: next free). */
  lun?: number;
  /** Initial content (default os-like for the OS disk, random for data disks). */
  fill?: DiskFill;
  /** Disk SKU (default Premium_LRS); a VM with an UltraSSD_LRS disk cannot have restore points. */
  skuName?: string;
}

export interface CreateVmSpec {
  /** One of the emulator's subscriptions (default: the first). */
  subscriptionId?: string;
  name: string;
  resourceGroup: string;
  region: string;
  tags?: Record<string, string>;
  vmSize?: string;
  osType?: 'Linux' | 'Windows';
  /** OS disk generation (default V2). */
  hyperVGeneration?: 'V1' | 'V2';
  /** e.g. TrustedLaunch (default: none, a Standard VM). */
  securityType?: string;
  /** Availability zone of the VM and its disks ('1' … '3'). */
  zone?: string;
  disks: CreateVmDiskSpec[];
  /** Seed for deterministic content (default random). */
  seed?: number;
}

export interface EmulatedDiskInfo {
  id: string;
  name: string;
  role: 'os' | 'data';
  lun?: number;
  sizeBytes: number;
}

export interface EmulatedVmInfo {
  id: string;
  name: string;
  resourceGroup: string;
  region: string;
  tags: Record<string, string>;
  disks: EmulatedDiskInfo[];
}

export interface VmWrite {
  /** Disk name or id (must belong to the VM). */
  diskName: string;
  offset: number;
  /** Bytes to write; or give `length` and `pattern`. */
  data?: Buffer;
  length?: number;
  /** `random` (default), `zeros`, or a byte value 0–255 repeated. */
  pattern?: 'random' | 'zeros' | number;
}

export interface WriteToVmOptions {
  /** Fraction (0–1] of each disk's size to overwrite with scattered writes. */
  fraction?: number;
  /** Explicit writes. */
  writes?: VmWrite[];
  seed?: number;
}

export interface WrittenRange {
  diskId: string;
  offset: number;
  length: number;
}

/** A small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS =
  'the of and to in is for on that with kernel systemd boot config log error warning info user root var lib usr etc home data index page block sector file node process thread memory cache disk volume backup snapshot azure region token service request response'.split(
    ' ',
  );

function logLines(bytes: number, rnd: () => number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let line = 0; size < bytes; line++) {
    const s = `${new Date(1700000000000 + line * 997).toISOString()} host${Math.floor(rnd() * 8)} ${WORDS[Math.floor(rnd() * WORDS.length)]}[${Math.floor(rnd() * 30000)}]: ${Array.from({ length: 4 + Math.floor(rnd() * 8) }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(' ')}\n`;
    lines.push(s);
    size += s.length;
  }
  return Buffer.from(lines.join(''), 'latin1');
}

/** Log lines made once, which text regions are cut from. */
let textPool: Buffer | undefined;

/**
 * Log-like text: slices of the pool from random places, stamped every 4 KiB so that no two regions
 * (of a disk, or of two disks) hold the same 4 KiB, as no two machines' logs do. Writing every
 * line afresh cost a VM's creation more than storing its disks did (a 1,000-VM bench spent most of
 * its setup formatting dates).
 */
function fillText(buf: Buffer, rnd: () => number): void {
  textPool ??= logLines(1024 * 1024, prng(0x1065));
  const pool = textPool;
  for (let at = 0; at < buf.length; ) {
    const n = Math.min(buf.length - at, 4096 + Math.floor(rnd() * 60 * 1024));
    const from = Math.floor(rnd() * (pool.length - n));
    pool.copy(buf, at, from, from + n);
    at += n;
  }
  const tag = Math.floor(rnd() * 2 ** 32).toString(16);
  for (let at = 0; at + 32 <= buf.length; at += 4096) buf.write(`\n#${tag}-${at.toString(16)}#\n`, at, 'latin1');
}

function randomFill(buf: Buffer, rnd: () => number): void {
  // Fast pseudo-random fill (deterministic for a seed).
  let a = Math.floor(rnd() * 4294967296) >>> 0;
  const n = buf.length - (buf.length % 4);
  for (let i = 0; i < n; i += 4) {
    a ^= a << 13;
    a ^= a >>> 17;
    a ^= a << 5;
    buf.writeUInt32LE(a >>> 0, i);
  }
  for (let i = n; i < buf.length; i++) buf[i] = Math.floor(rnd() * 256);
}

const REGION = 1024 * 1024;

/**
 * Generates each disk's initial content region by region (disk after disk, so a seed gives the
 * same bytes) and stores the non-zero parts, setting each disk's `contentId`. The disks are
 * written at once, each as one content created with its first batch: a VM's creation waits on
 * one round of fsyncs per batch, not on two map writes and one round per disk in turn.
 */
async function fillDisks(
  core: EmulatorCore,
  disks: { rec: DiskRec; fill: DiskFill }[],
  rnd: () => number,
): Promise<void> {
  const chains: Promise<void>[] = [];
  for (const { rec, fill } of disks) {
    let chain: Promise<void> | undefined;
    let inFlight = 0;
    const store = (batch: PageWrite[], bytes: number) => {
      inFlight += bytes;
      const step = async () => {
        if (rec.contentId) await core.writeContent(rec.contentId, batch);
        else rec.contentId = await core.store.create(undefined, batch);
        inFlight -= bytes;
      };
      chain = chain ? chain.then(step) : step();
      // Failures surface from Promise.all below; this keeps Node from calling one unhandled meanwhile.
      chain.catch(() => {});
    };
    for (const batch of batches(rec, fill, rnd)) {
      store(batch.writes, batch.bytes);
      if (inFlight >= MAX_FILL_IN_FLIGHT) await chain;
    }
    if (!chain) store([], 0);
    chains.push(chain!);
  }
  await Promise.all(chains);
}

/** Generated bytes a VM's creation holds in memory at most per disk. */
const MAX_FILL_IN_FLIGHT = 32 * REGION;

/** A disk's initial content, 16 MiB of regions at a time (zero regions are left out). */
function* batches(d: DiskRec, fill: DiskFill, rnd: () => number): Generator<{ writes: PageWrite[]; bytes: number }> {
  if (fill === 'zeros') return;
  let batch: PageWrite[] = [];
  let batchBytes = 0;
  for (let off = 0; off < d.sizeBytes; off += REGION) {
    const len = Math.min(REGION, d.sizeBytes - off);
    let kind: 'zero' | 'text' | 'random';
    if (fill === 'random') kind = 'random';
    else {
      const r = rnd();
      // First MiB always has data (boot sector, partition table, file system headers).
      kind = off === 0 ? 'text' : r < 0.4 ? 'zero' : r < 0.75 ? 'text' : 'random';
    }
    if (kind === 'zero') continue;
    const buf = Buffer.alloc(len);
    if (kind === 'text') {
      fillText(buf, rnd);
      // Sprinkle zeroed holes inside text regions.
      if (rnd() < 0.5) buf.fill(0, 256 * 1024, Math.min(384 * 1024, len));
    } else randomFill(buf, rnd);
    batch.push({ offset: off, data: buf, length: len });
    batchBytes += len;
    if (batchBytes >= 16 * REGION) {
      yield { writes: batch, bytes: batchBytes };
      batch = [];
      batchBytes = 0;
    }
  }
  if (batch.length) yield { writes: batch, bytes: batchBytes };
}

function info(core: EmulatorCore, v: VmRec): EmulatedVmInfo {
  const disk = (id: string, role: 'os' | 'data', lun?: number): EmulatedDiskInfo => {
    const d = core.st.disks[keyOf(id)]!;
    const out: EmulatedDiskInfo = { id: d.id, name: d.name, role, sizeBytes: d.sizeBytes };
    if (lun !== undefined) out.lun = lun;
    return out;
  };
  return {
    id: v.id,
    name: v.name,
    resourceGroup: v.resourceGroup,
    region: v.location,
    tags: v.tags,
    disks: [disk(v.osDiskId, 'os'), ...v.dataDisks.map((dd) => disk(dd.diskId, 'data', dd.lun))],
  };
}

/** The in-process control API (also exposed over HTTP under /_emulator). */
export class EmulatorControl {
  readonly core: EmulatorCore;
  #ticker: NodeJS.Timeout | undefined;

  constructor(core: EmulatorCore) {
    this.core = core;
  }

  /** Creates a running VM with new attached managed disks filled with initial content. */
  async createVm(spec: CreateVmSpec): Promise<EmulatedVmInfo> {
    const core = this.core;
    if (spec.subscriptionId !== undefined) {
      const sub = hostedSubscription(core.st, spec.subscriptionId);
      if (!sub)
        throw new ArmError(
          404,
          'SubscriptionNotFound',
          `createVm: the emulator hosts no subscription '${spec.subscriptionId}' (it hosts ${hostedSubscriptions(core.st).join(', ')})`,
        );
      const { subscriptionId: _, ...rest } = spec;
      return inSubscription(sub, () => this.createVm(rest));
    }
    return core.exclusive(async () => {
      const location = normalizeLocation(spec.region);
      const rg = spec.resourceGroup;
      if (!spec.name || !rg)
        throw new ArmError(400, 'InvalidParameter', 'createVm: name and resourceGroup are required');
      const vmId = core.resourceId(rg, 'virtualMachines', spec.name);
      if (core.st.virtualMachines[keyOf(vmId)]) throw new ArmError(409, 'Conflict', `VM ${vmId} already exists`);
      const osSpecs = spec.disks.filter((d) => d.role === 'os');
      if (osSpecs.length !== 1)
        throw new ArmError(400, 'InvalidParameter', 'createVm: exactly one disk must have role "os"');
      const rnd = prng(spec.seed ?? randomBytes(4).readUInt32LE(0));
      const osType = spec.osType ?? 'Linux';
      const recs: { rec: DiskRec; spec: CreateVmDiskSpec; lun?: number }[] = [];
      const usedLuns = new Set<number>();
      for (const ds of [...osSpecs, ...spec.disks.filter((d) => d.role === 'data')]) {
        if (!Number.isInteger(ds.sizeBytes) || ds.sizeBytes <= 0 || ds.sizeBytes % PAGE !== 0) {
          throw new ArmError(
            400,
            'InvalidParameter',
            `createVm: disk ${ds.name}: sizeBytes must be a positive multiple of 512`,
          );
        }
        const id = core.resourceId(rg, 'disks', ds.name);
        if (core.st.disks[keyOf(id)]) throw new ArmError(409, 'Conflict', `disk ${id} already exists`);
        let lun: number | undefined;
        if (ds.role === 'data') {
          lun = ds.lun ?? [...Array(64).keys()].find((l) => !usedLuns.has(l))!;
          if (usedLuns.has(lun)) throw new ArmError(400, 'InvalidParameter', `createVm: LUN ${lun} used twice`);
          usedLuns.add(lun);
        }
        const uniqueId = randomUUID();
        const rec: DiskRec = {
          id,
          name: ds.name,
          resourceGroup: rg,
          location,
          tags: {},
          skuName: ds.skuName ?? 'Premium_LRS',
          sizeBytes: ds.sizeBytes,
          contentId: '', // fillDisks creates it
          uniqueId,
          timeCreated: new Date().toISOString(),
          readyAt: 0,
          creationData:
            ds.role === 'os'
              ? {
                  createOption: 'FromImage',
                  imageReference: {
                    id: `/Subscriptions/${core.st.subscriptionId}/Providers/Microsoft.Compute/Locations/${location}/Publishers/Canonical/ArtifactTypes/VMImage/Offers/ubuntu-24_04-lts/Skus/server/Versions/latest`,
                  },
                }
              : { createOption: 'Empty' },
          uploadPending: false,
          family: uniqueId,
          managedBy: vmId,
        };
        if (ds.role === 'os') {
          rec.osType = osType;
          rec.hyperVGeneration = spec.hyperVGeneration ?? 'V2';
          if (spec.securityType) rec.securityType = spec.securityType;
        }
        if (spec.zone) rec.zone = spec.zone;
        recs.push(lun === undefined ? { rec, spec: ds } : { rec, spec: ds, lun });
      }
      await fillDisks(
        core,
        recs.map((r) => ({ rec: r.rec, fill: r.spec.fill ?? (r.spec.role === 'os' ? 'os-like' : 'random') })),
        rnd,
      );
      const vm: VmRec = {
        id: vmId,
        name: spec.name,
        resourceGroup: rg,
        location,
        tags: spec.tags ?? {},
        vmId: randomUUID(),
        vmSize: spec.vmSize ?? 'Standard_D2s_v3',
        osType,
        ...(spec.securityType ? { securityType: spec.securityType } : {}),
        ...(spec.zone ? { zone: spec.zone } : {}),
        osDiskId: recs[0]!.rec.id,
        dataDisks: recs.slice(1).map((r) => ({ lun: r.lun!, diskId: r.rec.id })),
        timeCreated: new Date().toISOString(),
        readyAt: 0,
      };
      for (const r of recs) core.st.disks[keyOf(r.rec.id)] = r.rec;
      core.st.virtualMachines[keyOf(vmId)] = vm;
      await core.save();
      return info(core, vm);
    });
  }

  getVm(vmIdOrName: string): EmulatedVmInfo {
    const v = this.core.findVm(vmIdOrName);
    if (!v) throw new ArmError(404, 'ResourceNotFound', `VM ${vmIdOrName} not found`);
    return info(this.core, v);
  }

  listVms(): EmulatedVmInfo[] {
    return Object.values(this.core.st.virtualMachines).map((v) => info(this.core, v));
  }

  /** Simulates a running VM writing to its disks. Returns what was written. */
  async writeToVm(vmIdOrName: string, opts: WriteToVmOptions): Promise<WrittenRange[]> {
    const core = this.core;
    return core.exclusive(async () => {
      const v = core.findVm(vmIdOrName);
      if (!v) throw new ArmError(404, 'ResourceNotFound', `VM ${vmIdOrName} not found`);
      const disks = [v.osDiskId, ...v.dataDisks.map((d) => d.diskId)].map((id) => core.st.disks[keyOf(id)]!);
      const rnd = prng(opts.seed ?? randomBytes(4).readUInt32LE(0));
      const perDisk = new Map<DiskRec, PageWrite[]>();
      const out: WrittenRange[] = [];
      const add = (d: DiskRec, w: PageWrite) => {
        if (w.offset < 0 || w.length <= 0 || w.offset + w.length > d.sizeBytes) {
          throw new ArmError(
            400,
            'InvalidParameter',
            `write [${w.offset}, +${w.length}) is outside disk ${d.name} (${d.sizeBytes} bytes)`,
          );
        }
        let l = perDisk.get(d);
        if (!l) perDisk.set(d, (l = []));
        l.push(w);
        out.push({ diskId: d.id, offset: w.offset, length: w.length });
      };
      for (const w of opts.writes ?? []) {
        const d = disks.find(
          (x) => x.name.toLowerCase() === w.diskName.toLowerCase() || keyOf(x.id) === keyOf(w.diskName),
        );
        if (!d) throw new ArmError(404, 'ResourceNotFound', `disk ${w.diskName} is not attached to VM ${v.name}`);
        let data: Buffer | null;
        const length = w.data ? w.data.length : (w.length ?? 0);
        if (w.data) data = w.data;
        else if (w.pattern === 'zeros') data = null;
        else if (typeof w.pattern === 'number') data = Buffer.alloc(length, w.pattern);
        else {
          data = Buffer.alloc(length);
          randomFill(data, rnd);
        }
        add(d, { offset: w.offset, length, data });
      }
      if (opts.fraction !== undefined) {
        if (!(opts.fraction > 0 && opts.fraction <= 1))
          throw new ArmError(400, 'InvalidParameter', 'fraction must be in (0, 1]');
        for (const d of disks) {
          const target = Math.max(4096, Math.floor(d.sizeBytes * opts.fraction));
          let written = 0;
          while (written < target) {
            const len = Math.min(d.sizeBytes, 4096 * (1 + Math.floor(rnd() * 32)), Math.max(4096, target - written));
            const offset = Math.floor((rnd() * (d.sizeBytes - len)) / 4096) * 4096;
            const r = rnd();
            let data: Buffer | null;
            if (r < 0.1) data = null;
            else {
              data = Buffer.alloc(len);
              if (r < 0.5) fillText(data, rnd);
              else randomFill(data, rnd);
            }
            add(d, { offset, length: len, data });
            written += len;
          }
        }
      }
      for (const [d, writes] of perDisk) await core.writeContent(d.contentId, writes);
      return out;
    });
  }

  /** Whole content of a disk or snapshot (by id or, for disks, name). */
  async readDisk(diskOrSnapshotId: string): Promise<Buffer> {
    const rec =
      this.core.findDisk(diskOrSnapshotId) ??
      this.core.st.snapshots[keyOf(diskOrSnapshotId)] ??
      this.core.st.diskRestorePoints?.[keyOf(diskOrSnapshotId)];
    if (!rec) throw new ArmError(404, 'ResourceNotFound', `disk or snapshot ${diskOrSnapshotId} not found`);
    return this.core.store.read(rec.contentId, 0, rec.sizeBytes);
  }

  /** Creates the demo VMs (skipping any that exist). */
  async seedDemo(): Promise<EmulatedVmInfo[]> {
    const MiB = 1024 * 1024;
    const specs: CreateVmSpec[] = [
      {
        name: 'web-01',
        resourceGroup: 'rg-prod-weu',
        region: 'westeurope',
        tags: { env: 'prod', app: 'web' },
        seed: 1,
        disks: [
          { name: 'web-01-os', sizeBytes: 128 * MiB, role: 'os', fill: 'os-like' },
          { name: 'web-01-data0', sizeBytes: 64 * MiB, role: 'data', lun: 0, fill: 'os-like' },
        ],
      },
      {
        name: 'db-01',
        resourceGroup: 'rg-prod-weu',
        region: 'westeurope',
        tags: { env: 'prod', app: 'db' },
        seed: 2,
        disks: [
          { name: 'db-01-os', sizeBytes: 128 * MiB, role: 'os', fill: 'os-like' },
          { name: 'db-01-data0', sizeBytes: 256 * MiB, role: 'data', lun: 0, fill: 'os-like' },
          { name: 'db-01-log', sizeBytes: 64 * MiB, role: 'data', lun: 1, fill: 'random' },
        ],
      },
      {
        name: 'dev-01',
        resourceGroup: 'rg-dev-eus',
        region: 'eastus',
        tags: { env: 'dev' },
        seed: 3,
        disks: [
          { name: 'dev-01-os', sizeBytes: 128 * MiB, role: 'os', fill: 'os-like' },
          { name: 'dev-01-data0', sizeBytes: 64 * MiB, role: 'data', lun: 0, fill: 'zeros' },
        ],
      },
    ];
    const out: EmulatedVmInfo[] = [];
    for (const s of specs) {
      const existing = this.core.findVm(this.core.resourceId(s.resourceGroup, 'virtualMachines', s.name));
      out.push(existing ? info(this.core, existing) : await this.createVm(s));
    }
    return out;
  }

  /** Starts (or restarts) a ticker that writes `fraction` of every VM's disks every `intervalMs`. */
  startTicker(opts: { intervalMs: number; fraction: number }): void {
    this.stopTicker();
    let busy = false;
    this.#ticker = setInterval(() => {
      if (busy) return;
      busy = true;
      void (async () => {
        try {
          for (const v of Object.values(this.core.st.virtualMachines))
            await this.writeToVm(v.id, { fraction: opts.fraction });
        } catch (err) {
          process.emitWarning(`emulator ticker: ${errorMessage(err)}`);
        } finally {
          busy = false;
        }
      })();
    }, opts.intervalMs);
    this.#ticker.unref();
  }

  stopTicker(): void {
    if (this.#ticker) clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  get tickerRunning(): boolean {
    return this.#ticker !== undefined;
  }
}
