import type { ObjectSpool } from './backend/backend.ts';
import { packEntriesToIndex, type ChunkIndex, type IndexFile } from './chunk-index.ts';
import { Semaphore } from './concurrency.ts';
import { DATA_PREFIX, packObjectName } from './format.ts';
import { finishInMemory, PackBuffer, PackBuilder, type PackOutput } from './pack.ts';
import type { Repository } from './repository.ts';

/** Packs written since the last index file; every this many packs get an index file of their own. */
const PACKS_PER_INDEX_FILE = 16;
/** Bytes handed to a spooled pack and not yet written, beyond which `add` waits for the disk. */
const SPOOL_BACKLOG_BYTES = 8 * 1024 * 1024;

/**
 * A pack written to its temp file as its chunks come, on backends that can (a folder): memory stays
 * at the chunks in flight instead of whole packs.
 */
class SpooledPack implements PackOutput {
  readonly spool: ObjectSpool;
  private readonly writes = new Set<Promise<void>>();
  private failure?: Error;
  backlog = 0;

  constructor(spool: ObjectSpool) {
    this.spool = spool;
  }

  write(offset: number, bytes: Uint8Array): void {
    this.backlog += bytes.length;
    const write: Promise<void> = this.spool
      .write(offset, bytes)
      .catch((err) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.backlog -= bytes.length;
        this.writes.delete(write);
      });
    this.writes.add(write);
  }

  /** Waits until at most `bytes` are waiting to be written. */
  async drain(bytes = 0): Promise<void> {
    while (this.backlog > bytes && this.writes.size > 0) await Promise.race(this.writes);
    if (this.failure) throw this.failure;
  }
}

/**
 * Collects new sealed chunks into packs, stores full packs (at most `uploads` at a time), and
 * records them in index files. On a folder, a pack is written to a temp file as it fills and
 * renamed once whole; on object stores it is built in memory (at most uploads + 1 pack buffers,
 * reused from pack to pack) and uploaded whole.
 *
 * Order is what keeps a crash harmless: a pack is stored before any index file names it, and
 * index files are written before the caller writes anything that refers to their chunks. A crash
 * leaves at worst packs that no index names (or temp files), which prune removes.
 */
export class PackWriter {
  private builder?: PackBuilder;
  private opening?: Promise<PackBuilder>;
  /** Pack buffers whose upload is done, for the next packs (object stores). */
  private readonly spareBuffers: Buffer[] = [];
  private readonly pending = new Set<string>();
  private readonly uploadSlots: Semaphore;
  private readonly uploads = new Set<Promise<void>>();
  /** Spools not yet published, to discard if the backup fails. */
  private readonly spools = new Set<ObjectSpool>();
  private unindexed: IndexFile['packs'] = [];
  private failure?: Error;
  storedBytes = 0;
  packsWritten = 0;

  private readonly repo: Repository;
  private readonly index: ChunkIndex;

  constructor(repo: Repository, index: ChunkIndex, uploads = 2) {
    this.repo = repo;
    this.index = index;
    this.uploadSlots = new Semaphore(uploads);
  }

  /**
   * Whether the caller should store this chunk: false if it is stored already or another caller
   * has claimed it. A true answer is a promise to `add` it (or the flush would lose it).
   */
  claim(id: string): boolean {
    if (this.index.has(id) || this.pending.has(id)) return false;
    this.pending.add(id);
    return true;
  }

  /** Adds a sealed chunk (whole, or as parts stored back to back). */
  async add(
    id: Buffer,
    sealed: Uint8Array | readonly Uint8Array[],
    rawLength: number,
    compression: number,
  ): Promise<void> {
    if (this.failure) throw this.failure;
    const builder = await this.current();
    builder.add(id, sealed, rawLength, compression);
    const length = builder.entries[builder.entries.length - 1].length;
    this.storedBytes += length;
    if (builder.output instanceof SpooledPack) await builder.output.drain(SPOOL_BACKLOG_BYTES);
    if (builder.size >= this.repo.config.packSize) await this.closePack(builder);
  }

  /** The pack being filled, started when the first chunk comes (a spool is a file: none for nothing). */
  private async current(): Promise<PackBuilder> {
    if (this.builder) return this.builder;
    this.opening ??= this.newBuilder().then(
      (b) => {
        this.builder = b;
        this.opening = undefined;
        return b;
      },
      (err) => {
        this.opening = undefined;
        throw err;
      },
    );
    return this.opening;
  }

  private async newBuilder(): Promise<PackBuilder> {
    const backend = this.repo.backend;
    if (backend.spool) {
      const spool = await backend.spool(DATA_PREFIX);
      this.spools.add(spool);
      return new PackBuilder(new SpooledPack(spool));
    }
    // Room for a full pack, its last chunk and its header, so the buffer never has to grow.
    const capacity = this.repo.config.packSize + 2 * this.repo.config.chunkSize;
    return new PackBuilder(new PackBuffer(this.spareBuffers.pop() ?? Buffer.allocUnsafeSlow(capacity)));
  }

  /**
   * Hands a pack to an upload. Several adds may find the same pack full while they wait for an
   * upload slot; only the first closes it, and never the next, nearly empty one (that made
   * header-only packs).
   */
  private async closePack(builder: PackBuilder | undefined): Promise<void> {
    if (!builder || builder.entries.length === 0) return;
    await this.uploadSlots.acquire();
    if (this.builder !== builder) {
      this.uploadSlots.release();
      return;
    }
    this.builder = undefined;
    const upload = this.upload(builder).finally(() => {
      this.uploadSlots.release();
      this.uploads.delete(upload);
    });
    this.uploads.add(upload);
  }

  private async upload(builder: PackBuilder): Promise<void> {
    try {
      const output = builder.output;
      let id: string;
      if (output instanceof SpooledPack) {
        id = builder.finish(this.repo.key.dataKey);
        await output.drain();
        await output.spool.publish(packObjectName(id));
        this.spools.delete(output.spool);
      } else {
        const pack = finishInMemory(builder, this.repo.key.dataKey);
        id = pack.id;
        await this.repo.backend.put(packObjectName(id), pack.data);
        if (output instanceof PackBuffer) this.spareBuffers.push(output.buffer);
      }
      const chunks = packEntriesToIndex(builder.entries);
      this.index.addPack(id, builder.size, chunks);
      for (const c of chunks) this.pending.delete(c.id);
      this.unindexed.push({ id, size: builder.size, chunks });
      this.packsWritten++;
      if (this.unindexed.length >= PACKS_PER_INDEX_FILE) await this.writeIndex();
    } catch (err) {
      this.failure ??= err as Error;
    }
  }

  private async writeIndex(): Promise<void> {
    const packs = this.unindexed.splice(0);
    if (packs.length === 0) return;
    try {
      await this.repo.writeIndexFile({ packs });
    } catch (err) {
      // Not indexed after all: `abandon` must still know these packs.
      this.unindexed.push(...packs);
      throw err;
    }
  }

  /**
   * After a failed backup: deletes the packs this writer stored that no index file names yet, and
   * the temp files of packs not finished. Nothing can refer to their chunks (other backups find
   * chunks only through index files), so this is safe at any time, and it gives back the space a
   * full disk needs. Packs already named by an index file stay; prune removes them if no recovery
   * point comes to use them.
   */
  async abandon(): Promise<void> {
    await this.opening?.catch(() => undefined);
    while (this.uploads.size > 0) await Promise.allSettled([...this.uploads]);
    const output = this.builder?.output;
    if (output instanceof SpooledPack) await output.drain().catch(() => undefined);
    this.builder = undefined;
    for (const spool of this.spools) await spool.discard();
    this.spools.clear();
    const packs = this.unindexed;
    this.unindexed = [];
    for (const p of packs) await this.repo.backend.delete(packObjectName(p.id)).catch(() => {});
  }

  /** Stores what is left and writes the last index file. After this, every added chunk is findable. */
  async flush(): Promise<void> {
    await this.opening;
    await this.closePack(this.builder);
    while (this.uploads.size > 0) await Promise.all(this.uploads);
    if (this.failure) throw this.failure;
    await this.writeIndex();
  }
}
