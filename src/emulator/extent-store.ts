import { mkdir, open, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDir, writeFileAtomic, writeNewFile } from './durable.ts';

/** Content is kept in fixed-size extents; a missing extent reads as zeros. */
export const EXTENT_SIZE = 64 * 1024;

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

  constructor(dir: string) {
    this.dir = dir;
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

  /** Creates content as a copy of `sourceId` (or empty). Durable on return. */
  async create(sourceId?: string): Promise<string> {
    const id = randomBytes(10).toString('hex');
    const src = sourceId === undefined ? new Map<number, string>() : this.#map(sourceId);
    const m = new Map(src);
    await this.#persistMap(id, m);
    this.#maps.set(id, m);
    for (const ext of m.values()) this.#ref(ext, 1);
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
    await Promise.all(pending);
    for (const d of dirs) await fsyncDir(d);
    await this.#persistMap(contentId, next);
    this.#maps.set(contentId, next);
    for (const ext of next.values()) this.#ref(ext, 1);
    for (const ext of old.values()) this.#ref(ext, -1);
  }

  /** Reads `length` bytes at `offset` (zeros where nothing was written). */
  async read(contentId: string, offset: number, length: number): Promise<Buffer> {
    const m = this.#map(contentId);
    const out = Buffer.alloc(length);
    const pinned: string[] = [];
    for (let idx = Math.floor(offset / EXTENT_SIZE); idx * EXTENT_SIZE < offset + length; idx++) {
      const ext = m.get(idx);
      if (ext) {
        this.#ref(ext, 1);
        pinned.push(ext);
      }
    }
    try {
      // The extents of a range are read at once, each straight into its place in `out`: one at a
      // time, a 1 MiB read waited on 16 file reads in a row and the emulator, not the client, set
      // the pace of every backup through it.
      const reads: Promise<void>[] = [];
      for (let idx = Math.floor(offset / EXTENT_SIZE); idx * EXTENT_SIZE < offset + length; idx++) {
        const ext = m.get(idx);
        if (!ext) continue;
        const base = idx * EXTENT_SIZE;
        const from = Math.max(offset, base);
        const to = Math.min(offset + length, base + EXTENT_SIZE);
        reads.push(this.#readExtentInto(ext, from - base, out.subarray(from - offset, to - offset)));
      }
      await Promise.all(reads);
    } finally {
      for (const ext of pinned) this.#ref(ext, -1);
    }
    return out;
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
    unlink(this.#extentPath(ext)).catch(() => {});
  }

  /** Reads `into.length` bytes of extent `ext` from `at` into `into`. */
  async #readExtentInto(ext: string, at: number, into: Buffer): Promise<void> {
    const h = await open(this.#extentPath(ext), 'r');
    try {
      const { bytesRead } = await h.read(into, 0, into.length, at);
      if (bytesRead !== into.length)
        throw new Error(`extent ${ext} is shorter than ${EXTENT_SIZE} bytes (read ${bytesRead} from ${at})`);
    } finally {
      await h.close();
    }
  }

  async #readExtent(ext: string): Promise<Buffer> {
    const data = await readFile(this.#extentPath(ext));
    if (data.length !== EXTENT_SIZE) throw new Error(`extent ${ext} is ${data.length} bytes, expected ${EXTENT_SIZE}`);
    return data;
  }

  async #persistMap(id: string, m: Map<number, string>): Promise<void> {
    const extents = [...m.entries()].sort((a, b) => a[0] - b[0]);
    await writeFileAtomic(this.#mapPath(id), JSON.stringify({ extentSize: EXTENT_SIZE, extents }));
  }

  #mapPath(id: string): string {
    return join(this.dir, 'maps', `${id}.json`);
  }

  #extentPath(ext: string): string {
    return join(this.dir, 'extents', ext.slice(0, 2), ext);
  }
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
