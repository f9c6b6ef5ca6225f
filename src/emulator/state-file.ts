import { open, readFile, stat, truncate, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './durable.ts';
import type { EmulatorState } from './state.ts';
import { isCollection, StateChanges } from './state-changes.ts';

/**
 * The emulator's state on disk: `state.json`, a whole copy, and `state.journal`, the records
 * changed since, one line per save. Rewriting all of `state.json` on every mutation made creating
 * N VMs cost N whole-state writes (quadratic: 1,000 VMs with 3 disks each took minutes); a save now
 * appends the records it changed and fsyncs that, and `state.json` is rewritten only when the
 * journal has grown as large as it (so rewriting costs at most as much as the appends before it).
 *
 * The state's top-level objects (disks, snapshots, grants, …) are collections of records, diffed
 * record by record against what was last written; its other fields (token, subscription ids, …)
 * are written whole when one changes. Durability is unchanged: a save returns once its line is
 * fsynced. A crash mid-append leaves a torn last line, which was never acknowledged: it is
 * skipped. The journal's first line names the generation of `state.json` it follows; a journal of
 * another generation (a crash between rewriting `state.json` and starting the new journal) is
 * already in `state.json` and is ignored.
 */
export class StateFile {
  readonly dataDir: string;
  #generation: number;
  /** Every record's JSON as last written, by collection then key. */
  #written = new Map<string, Map<string, string>>();
  #writtenMeta = '';
  #journal: FileHandle | undefined;
  /** The journal on disk follows the current `state.json` (append to it, never start it afresh). */
  #journalLive = false;
  #journalBytes = 0;
  #snapshotBytes = 0;
  /** No state.json yet, or a write failed half-way: the next save writes the whole state. */
  #mustRewrite = true;
  #changes = new StateChanges();
  /** The state is used through `track`'s view: a save compares the records written through it. */
  #tracked = false;
  /** GOLDSNAP_EMULATOR_CHECK_STATE=1: every save also compares all records (tests). */
  #check = process.env.GOLDSNAP_EMULATOR_CHECK_STATE === '1';
  /** Saves run one at a time, each diffing the state as it is when its turn comes. */
  #queue: Promise<void> = Promise.resolve();

  private constructor(dataDir: string, generation: number) {
    this.dataDir = dataDir;
    this.#generation = generation;
  }

  /** Reads the state (`undefined` if there is none yet), replaying the journal. */
  static async open(dataDir: string): Promise<{ file: StateFile; state: EmulatorState | undefined }> {
    const path = statePath(dataDir);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return { file: new StateFile(dataDir, 0), state: undefined };
    }
    const st = JSON.parse(text) as EmulatorState & { journalGeneration?: number };
    if (st.version !== 1) throw new Error(`${path}: unsupported state version ${String(st.version)}`);
    const generation = st.journalGeneration ?? 0;
    delete st.journalGeneration;
    const file = new StateFile(dataDir, generation);
    file.#snapshotBytes = Buffer.byteLength(text);
    // A data folder copied with hard links (cp -al, as bench/data-path.ts does) shares the journal
    // with its original: appending (or cutting a torn line) would change both. Its first save
    // starts new files instead.
    const shared = await hardLinked(journalPath(dataDir));
    await file.#replay(st, shared);
    file.#remember(st);
    file.#mustRewrite = shared;
    return { file, state: st };
  }

  /**
   * The view of `st` to read and change it through from now on, so that a save compares only the
   * records changed (src/emulator/state-changes.ts); without it every record is compared.
   */
  track(st: EmulatorState): EmulatorState {
    this.#tracked = true;
    return this.#changes.track(st);
  }

  /** Makes the state durable as it is now (only what changed since the last save is written). */
  save(state: EmulatorState): Promise<void> {
    const st = this.#changes.unwrap(state);
    const run = this.#queue.then(() => this.#save(st));
    this.#queue = run.catch(() => {});
    return run;
  }

  async close(): Promise<void> {
    await this.#queue;
    await this.#journal?.close();
    this.#journal = undefined;
  }

  async #save(st: EmulatorState): Promise<void> {
    if (this.#mustRewrite) {
      await this.#rewrite(st);
      return;
    }
    // Serialized now, once: the records may change again while the line is being written.
    const change = this.#diff(st);
    if (!change) return;
    const line = changeLine(change);
    if (this.#journalBytes + Buffer.byteLength(line) > Math.max(MIN_JOURNAL_BYTES, this.#snapshotBytes)) {
      await this.#rewrite(st);
      return;
    }
    try {
      const journal = this.#journal ?? (this.#journalLive ? await this.#reopenJournal() : await this.#startJournal());
      await journal.write(line);
      await journal.datasync();
    } catch (err) {
      // Part of the line may be in the file: the next save writes state.json whole instead.
      this.#mustRewrite = true;
      throw err;
    }
    this.#journalBytes += Buffer.byteLength(line);
    this.#commit(change);
  }

  /** `state.json` afresh, then an empty journal of the next generation. */
  async #rewrite(st: EmulatorState): Promise<void> {
    this.#changes.take(); // all of it is written
    const generation = this.#generation + 1;
    const text = JSON.stringify({ ...st, journalGeneration: generation });
    // The baseline is the state as serialized, before it can change during the writes.
    this.#remember(st);
    this.#mustRewrite = true;
    await this.#journal?.close().catch(() => {});
    this.#journal = undefined;
    this.#journalLive = false;
    await writeFileAtomic(statePath(this.dataDir), text);
    this.#generation = generation;
    this.#snapshotBytes = Buffer.byteLength(text);
    await this.#startJournal();
    this.#mustRewrite = false;
  }

  /** A journal with no changes yet, for the current `state.json`. */
  async #startJournal(): Promise<FileHandle> {
    const header = `${JSON.stringify({ generation: this.#generation })}\n`;
    await writeFileAtomic(journalPath(this.dataDir), header);
    this.#journalLive = true;
    this.#journalBytes = header.length;
    return this.#reopenJournal();
  }

  async #reopenJournal(): Promise<FileHandle> {
    this.#journal = await open(journalPath(this.dataDir), 'a');
    return this.#journal;
  }

  async #replay(st: EmulatorState, shared: boolean): Promise<void> {
    const path = journalPath(this.dataDir);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const state = st as unknown as Record<string, unknown>;
    let at = 0;
    for (let lineNo = 1; at < bytes.length; lineNo++) {
      const end = bytes.indexOf(10, at);
      const parsed = end < 0 ? undefined : parseLine(bytes.toString('utf8', at, end));
      if (lineNo === 1) {
        // Another generation's journal is already in state.json (a crash before its successor began).
        if ((parsed as { generation?: number } | undefined)?.generation !== this.#generation) return;
        this.#journalLive = true;
      } else if (!parsed) {
        // Only the last line can be torn (a crash mid-append, never acknowledged): cut it off so
        // that the next append does not follow it.
        if (end >= 0 && end + 1 < bytes.length)
          throw new Error(
            `${path}: line ${lineNo} is not JSON; the emulator's state is damaged (delete the data directory to start afresh)`,
          );
        if (!shared) await truncate(path, at);
        break;
      } else applyChange(state, parsed as ChangeLine);
      at = end + 1;
    }
    this.#journalBytes = at;
  }

  /** What differs from what was last written, serialized, or undefined. */
  #diff(st: EmulatorState): Change | undefined {
    if (!this.#tracked) return this.#diffAll(st);
    const taken = this.#changes.take();
    const state = st as unknown as Record<string, unknown>;
    const set: [string, string, string][] = [];
    const del: [string, string][] = [];
    for (const [c, keys] of taken.records) {
      const records = state[c];
      const written = this.#written.get(c);
      for (const key of keys) {
        if (isCollection(records) && Object.hasOwn(records, key)) {
          const json = JSON.stringify(records[key]);
          if (written?.get(key) !== json) set.push([c, key, json]);
        } else if (written?.has(key)) del.push([c, key]);
      }
    }
    let meta: string | undefined;
    if (taken.meta) {
      const json = JSON.stringify(split(st).meta);
      if (json !== this.#writtenMeta) meta = json;
    }
    if (this.#check) this.#checkAgainstAll(st, set, del, meta);
    if (meta === undefined && !set.length && !del.length) return undefined;
    return { ...(meta !== undefined ? { meta } : {}), set, del };
  }

  /** Fails if comparing every record finds a change the tracking did not report. */
  #checkAgainstAll(st: EmulatorState, set: [string, string, string][], del: [string, string][], meta?: string): void {
    const all = this.#diffAll(st);
    if (!all) return;
    const seen = new Set([...set, ...del].map(([c, key]) => `${c}/${key}`));
    const missed = [...all.set, ...all.del].map(([c, key]) => `${c}/${key}`).filter((k) => !seen.has(k));
    if (all.meta !== undefined && meta === undefined) missed.push('(meta)');
    if (missed.length)
      throw new Error(
        `emulator state: changed without passing through the tracked state, so not saved: ${missed.slice(0, 5).join(', ')}`,
      );
  }

  /** What differs from what was last written, comparing every record. */
  #diffAll(st: EmulatorState): Change | undefined {
    const { meta, collections } = split(st);
    const metaJson = JSON.stringify(meta);
    const set: [string, string, string][] = [];
    const del: [string, string][] = [];
    for (const [c, records] of collections) {
      const written = this.#written.get(c);
      for (const [key, value] of Object.entries(records)) {
        const json = JSON.stringify(value);
        if (written?.get(key) !== json) set.push([c, key, json]);
      }
      if (written) for (const key of written.keys()) if (!Object.hasOwn(records, key)) del.push([c, key]);
    }
    for (const [c, written] of this.#written)
      if (!collections.has(c)) for (const key of written.keys()) del.push([c, key]);
    if (metaJson === this.#writtenMeta && !set.length && !del.length) return undefined;
    return { ...(metaJson !== this.#writtenMeta ? { meta: metaJson } : {}), set, del };
  }

  /** Takes a written change as the new baseline of the diff. */
  #commit(change: Change): void {
    if (change.meta !== undefined) this.#writtenMeta = change.meta;
    for (const [c, key, json] of change.set) {
      let written = this.#written.get(c);
      if (!written) this.#written.set(c, (written = new Map()));
      written.set(key, json);
    }
    for (const [c, key] of change.del) this.#written.get(c)?.delete(key);
  }

  #remember(st: EmulatorState): void {
    const { meta, collections } = split(st);
    this.#writtenMeta = JSON.stringify(meta);
    this.#written = new Map();
    for (const [c, records] of collections)
      this.#written.set(c, new Map(Object.entries(records).map(([k, v]) => [k, JSON.stringify(v)])));
  }
}

/** The journal is not folded into `state.json` before it reaches this size. */
const MIN_JOURNAL_BYTES = 1024 * 1024;

/** A save's changes, values as JSON text. */
interface Change {
  meta?: string;
  set: [string, string, string][];
  del: [string, string][];
}

/** A journal line as read back. */
interface ChangeLine {
  meta?: Record<string, unknown>;
  set?: [string, string, unknown][];
  del?: [string, string][];
}

/** One line, `{"meta":…,"set":[[collection,key,record],…],"del":[[collection,key],…]}`. */
function changeLine(change: Change): string {
  const parts: string[] = [];
  if (change.meta !== undefined) parts.push(`"meta":${change.meta}`);
  if (change.set.length)
    parts.push(
      `"set":[${change.set.map(([c, key, json]) => `[${JSON.stringify(c)},${JSON.stringify(key)},${json}]`).join(',')}]`,
    );
  if (change.del.length) parts.push(`"del":${JSON.stringify(change.del)}`);
  return `{${parts.join(',')}}\n`;
}

/** Top-level objects are collections of records; the other fields are the state's meta. */
function split(st: EmulatorState): {
  meta: Record<string, unknown>;
  collections: Map<string, Record<string, unknown>>;
} {
  const meta: Record<string, unknown> = {};
  const collections = new Map<string, Record<string, unknown>>();
  for (const [k, v] of Object.entries(st)) {
    if (isCollection(v)) collections.set(k, v);
    else meta[k] = v;
  }
  return { meta, collections };
}

function applyChange(state: Record<string, unknown>, change: ChangeLine): void {
  if (change.meta) {
    // The meta is written whole: a field it lacks was removed.
    for (const [k, v] of Object.entries(state)) if (!isCollection(v) && !Object.hasOwn(change.meta, k)) delete state[k];
    Object.assign(state, change.meta);
  }
  for (const [c, key, value] of change.set ?? []) {
    const coll = (state[c] ??= {}) as Record<string, unknown>;
    coll[key] = value;
  }
  for (const [c, key] of change.del ?? []) delete (state[c] as Record<string, unknown> | undefined)?.[key];
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

async function hardLinked(path: string): Promise<boolean> {
  try {
    return (await stat(path)).nlink > 1;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export function statePath(dataDir: string): string {
  return join(dataDir, 'state.json');
}

export function journalPath(dataDir: string): string {
  return join(dataDir, 'state.journal');
}
