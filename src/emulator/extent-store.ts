import { mkdir, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDir, writeFileAtomic, writeNewFile } from './durable.ts';
import { ExtentHandles } from './extent-handles.ts';

/** Content is kept in fixed-size extents; a missing extent reads as zeros. */
export const EXTENT_SIZE = 64 * 1024;

/**
 * Extent files kept open for reads (64 MiB of extents): descriptors are cheap, and a disk read
 * again (a retry, the next backup of a copy-on-write snapshot) finds its extents open.
 */
export const OPEN_EXTENTS = 1024;

export interface Range {
  /** First byte (inclusive). */
  start: number;
  /** Last byte (inclusive), as in the page-blob XML. */
  end: number;
}

export interface PageWrite {
  offset: number;
  /** Bytes to write; `null` clears (writes zeros) `length` bytes. */
  data: Buffer | null;
  length: number;
}

/**
 * Sparse, copy-on-write content store. Each content object (a disk or a snapshot) is a map
 * extent index → immutable extent file. A snapshot copies the map, never the data; a write makes
 * new extent files and then replaces the map atomically. Extents are reference counted in memory
 * (recomputed at start-up, where unreferenced files left by a crash are swept).
 *
 * Layout: <dir>/maps/<contentId>.json, <dir>/extents/<xx>/<extentId>.
 */
export class ExtentStore {
  readonly dir: string;
  #maps = new Map<string, Map<number, string>>();
  #refs = new Map<string, number>();
  #knownDirs = new Set<string>();
  #handles: ExtentHandles;

  constructor(dir: string, openExtents = OPEN_EXTENTS) {
    this.dir = dir;
    this.#handles = new ExtentHandles(openExtents);
  }

  /** Extent files open for reads now. */
  get openExtents(): number {
    return this.#handles.size;
  }

  /** Closes the extent files kept open (reads still running close theirs when they end). */
  close(): Promise<void> {
    return this.#handles.closeAll();
  }

  /** Loads the maps of live content and removes everything else (crash leftovers). */
  async init(live: Set<string>): Promise<void> {
    await mkdir(join(this.dir, 'maps'), { recursive: true });
    await mkdir(join(this.dir, 'extents'), { recursive: true });
    for (const file of await readdir(join(this.dir, 'maps'))) {
      const id = file.endsWith('.json') ? file.slice(0, -5) : '';
      if (!id || !live.has(id)) {
        await unlink(join(this.dir, 'maps', file)).catch(() => {});
        continue;
      }
      const parsed = JSON.parse(await readFile(join(this.dir, 'maps', file), 'utf8')) as {
        extentSize: number;
        extents: [number, string][];
      };
      if (parsed.extentSize !== EXTENT_SIZE)
        throw new Error(`content map ${file}: extent size ${parsed.extentSize} unsupported`);
      const m = new Map<number, string>(parsed.extents);
      this.#maps.set(id, m);
      for (const ext of m.values()) this.#ref(ext, 1);
    }
    for (const id of live)
      if (!this.#maps.has(id)) throw new Error(`content map ${id} is missing from ${this.dir}/maps`);
    for (const sub of await readdir(join(this.dir, 'extents'))) {
      this.#knownDirs.add(sub);
      for (const file of await readdir(join(this.dir, 'extents', sub))) {
        if (!this.#refs.has(file)) await unlink(join(this.dir, 'extents', sub, file)).catch(() => {});
      }
    }
  }

  has(contentId: string): boolean {
    return this.#maps.has(contentId);
  }

  /**
   * Creates content as a copy of `sourceId` (or empty), with `writes` applied (one map written
   * instead of two for a new disk with data). Durable on return.
   */
  async create(sourceId?: string, writes: PageWrite[] = []): Promise<string> {
    const id = randomBytes(10).toString('hex');
    const src = sourceId === undefined ? new Map<number, string>() : this.#map(sourceId);
    if (!writes.length) {
      const m = new Map(src);
      await this.#persistMap(id, m);
      this.#maps.set(id, m);
      for (const ext of m.values()) this.#ref(ext, 1);
      return id;
    }
    // The map is a new file: written beside the extents, and every folder fsynced once after them
    // (two rounds of fsyncs instead of four: createVm's time was its fsyncs).
    const { next, files, dirs } = await this.#writeExtents(src, writes);
    await Promise.all([files, writeNewFile(this.#mapPath(id), Buffer.from(mapJson(next)))]);
    await Promise.all([...dirs, join(this.dir, 'maps')].map((d) => fsyncDir(d)));
    this.#maps.set(id, next);
    for (const ext of next.values()) this.#ref(ext, 1);
    return id;
  }

  /** Forgets content (after the state no longer references it). */
  async delete(contentId: string): Promise<void> {
    const m = this.#maps.get(contentId);
    if (!m) return;
    this.#maps.delete(contentId);
    await unlink(this.#mapPath(contentId)).catch(() => {});
    for (const ext of m.values()) this.#ref(ext, -1);
  }

  /**
   * Applies writes (any alignment) to the content; durable on return. Callers serialize writes
   * to the same content.
   */
  async write(contentId: string, writes: PageWrite[]): Promise<void> {
    const old = this.#map(contentId);
    const { next, files, dirs } = await this.#writeExtents(old, writes);
    await files;
    await Promise.all([...dirs].map((d) => fsyncDir(d)));
    await this.#persistMap(contentId, next);
    this.#maps.set(contentId, next);
    for (const ext of next.values()) this.#ref(ext, 1);
    for (const ext of old.values()) this.#ref(ext, -1);
  }

  /**
   * Writes the extents `writes` make and answers `old` updated with them; durable once `files`
   * resolves and the folders `dirs` are fsynced.
   */
  async #writeExtents(
    old: Map<number, string>,
    writes: PageWrite[],
  ): Promise<{ next: Map<number, string>; files: Promise<void>; dirs: Set<string> }> {
    const next = new Map(old);
    // Group the writes by extent, applied in order.
    const touched = new Map<number, PageWrite[]>();
    for (const w of writes) {
      if (w.length <= 0) continue;
      for (let idx = Math.floor(w.offset / EXTENT_SIZE); idx * EXTENT_SIZE < w.offset + w.length; idx++) {
        let list = touched.get(idx);
        if (!list) touched.set(idx, (list = []));
        list.push(w);
      }
    }
    const dirs = new Set<string>();
    const pending: Promise<void>[] = [];
    for (const [idx, list] of touched) {
      const base = idx * EXTENT_SIZE;
      const whole = list.some((w) => w.offset <= base && w.offset + w.length >= base + EXTENT_SIZE);
      const oldExt = old.get(idx);
      let buf: Buffer;
      if (oldExt && !whole) buf = await this.#readExtent(oldExt);
      else buf = Buffer.alloc(EXTENT_SIZE);
      for (const w of list) {
        const from = Math.max(w.offset, base);
        const to = Math.min(w.offset + w.length, base + EXTENT_SIZE);
        if (w.data) w.data.copy(buf, from - base, from - w.offset, to - w.offset);
        else buf.fill(0, from - base, to - base);
      }
      if (isZero(buf)) {
        next.delete(idx);
        continue;
      }
      const ext = randomBytes(10).toString('hex');
      const sub = ext.slice(0, 2);
      if (!this.#knownDirs.has(sub)) {
        await mkdir(join(this.dir, 'extents', sub), { recursive: true });
        this.#knownDirs.add(sub);
        dirs.add(join(this.dir, 'extents'));
      }
      dirs.add(join(this.dir, 'extents', sub));
      next.set(idx, ext);
      pending.push(writeNewFile(this.#extentPath(ext), buf));
      if (pending.length >= 32) await Promise.all(pending.splice(0));
    }
    return { next, files: Promise.all(pending).then(() => {}), dirs };
  }

  /** Reads `length` bytes at `offset` (zeros where nothing was written). */
  async read(contentId: string, offset: number, length: number): Promise<Buffer> {
    // Not zero-filled: every byte is either read from an extent or zeroed (holes).
    const out = Buffer.allocUnsafe(length);
    await this.readInto(contentId, offset, out);
    return out;
  }

  /** Fills `into` with the bytes at `offset` (zeros where nothing was written). */
  async readInto(contentId: string, offset: number, into: Buffer): Promise<void> {
    const m = this.#map(contentId);
    const length = into.length;
    const pinned: string[] = [];
    for (let idx = Math.floor(offset / EXTENT_SIZE); idx * EXTENT_SIZE < offset + length; idx++) {
      const ext = m.get(idx);
      if (ext) {
        this.#ref(ext, 1);
        pinned.push(ext);
      }
    }
    try {
      // The extents of a range are read at once, each straight into its place in `into`: one at a
      // time, a 1 MiB read waited on 16 file reads in a row and the emulator, not the client, set
      // the pace of every backup through it.
      const reads: Promise<void>[] = [];
      for (let idx = Math.floor(offset / EXTENT_SIZE); idx * EXTENT_SIZE < offset + length; idx++) {
        const ext = m.get(idx);
        const base = idx * EXTENT_SIZE;
        const from = Math.max(offset, base);
        const to = Math.min(offset + length, base + EXTENT_SIZE);
        if (!ext) {
          into.fill(0, from - offset, to - offset);
          continue;
        }
        reads.push(this.#readExtentInto(ext, from - base, into.subarray(from - offset, to - offset)));
      }
      await Promise.all(reads);
    } finally {
      for (const ext of pinned) this.#ref(ext, -1);
    }
  }

  /** Ranges (clipped to [offset, offset+length)) that may hold non-zero data. */
  allocatedRanges(contentId: string, offset: number, length: number): Range[] {
    const m = this.#map(contentId);
    const idxs = [...m.keys()].sort((a, b) => a - b);
    return clipMerge(idxs, offset, length);
  }

  /**
   * Ranges where `contentId` differs from `previousId`: `changed` (new data, to read) and
   * `cleared` (now zero, were data). Extent granularity; a superset of the differing bytes.
   */
  diffRanges(
    contentId: string,
    previousId: string,
    offset: number,
    length: number,
  ): { changed: Range[]; cleared: Range[] } {
    const cur = this.#map(contentId);
    const prev = this.#map(previousId);
    const changed: number[] = [];
    const cleared: number[] = [];
    for (const [idx, ext] of cur) if (prev.get(idx) !== ext) changed.push(idx);
    for (const idx of prev.keys()) if (!cur.has(idx)) cleared.push(idx);
    changed.sort((a, b) => a - b);
    cleared.sort((a, b) => a - b);
    return { changed: clipMerge(changed, offset, length), cleared: clipMerge(cleared, offset, length) };
  }

  /** Bytes actually stored for this content (allocated extents × extent size). */
  allocatedBytes(contentId: string): number {
    return this.#map(contentId).size * EXTENT_SIZE;
  }

  #map(contentId: string): Map<number, string> {
    const m = this.#maps.get(contentId);
    if (!m) throw new Error(`unknown content ${contentId}`);
    return m;
  }

  #ref(ext: string, delta: number): void {
    const n = (this.#refs.get(ext) ?? 0) + delta;
    if (n > 0) {
      this.#refs.set(ext, n);
      return;
    }
    this.#refs.delete(ext);
    void this.#handles.forget(ext);
    unlink(this.#extentPath(ext)).catch(() => {});
  }

  /** Reads `into.length` bytes of extent `ext` from `at` into `into`. */
  #readExtentInto(ext: string, at: number, into: Buffer): Promise<void> {
    return this.#handles.readInto(ext, this.#extentPath(ext), into, at);
  }

  async #readExtent(ext: string): Promise<Buffer> {
    const data = Buffer.allocUnsafe(EXTENT_SIZE);
    await this.#readExtentInto(ext, 0, data);
    return data;
  }

  async #persistMap(id: string, m: Map<number, string>): Promise<void> {
    await writeFileAtomic(this.#mapPath(id), mapJson(m));
  }

  #mapPath(id: string): string {
    return join(this.dir, 'maps', `${id}.json`);
  }

  #extentPath(ext: string): string {
    return join(this.dir, 'extents', ext.slice(0, 2), ext);
  }
}

function mapJson(m: Map<number, string>): string {
  const extents = [...m.entries()].sort((a, b) => a[0] - b[0]);
  return JSON.stringify({ extentSize: EXTENT_SIZE, extents });
}

const ZEROS = Buffer.alloc(EXTENT_SIZE);

export function isZero(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i += EXTENT_SIZE) {
    const part = buf.subarray(i, Math.min(i + EXTENT_SIZE, buf.length));
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

function clipMerge(sortedIdxs: number[], offset: number, length: number): Range[] {
  const out: Range[] = [];
  const lo = offset;
  const hi = offset + length; // exclusive
  for (const idx of sortedIdxs) {
    const s = Math.max(idx * EXTENT_SIZE, lo);
    const e = Math.min((idx + 1) * EXTENT_SIZE, hi);
    if (s >= e) continue;
    const last = out[out.length - 1];
    if (last && last.end + 1 === s) last.end = e - 1;
    else out.push({ start: s, end: e - 1 });
  }
  return out;
}
