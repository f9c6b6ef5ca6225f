import { packEntriesToIndex, type ChunkIndex, type IndexFile } from './chunk-index.ts';
import { Semaphore } from './concurrency.ts';
import { packObjectName } from './format.ts';
import { PackBuilder } from './pack.ts';
import type { Repository } from './repository.ts';

/** Packs written since the last index file; every this many packs get an index file of their own. */
const PACKS_PER_INDEX_FILE = 16;

/**
 * Collects new sealed chunks into packs, uploads full packs (at most `uploads` at a time, so at
 * most (uploads + 1) pack buffers exist, reused from pack to pack), and records them in index files.
 *
 * Order is what keeps a crash harmless: a pack is uploaded before any index file names it, and
 * index files are written before the caller writes anything that refers to their chunks. A crash
 * leaves at worst packs that no index names, which prune removes.
 */
export class PackWriter {
  private builder: PackBuilder;
  /** Pack buffers whose upload is done, for the next packs. */
  private readonly spareBuffers: Buffer[] = [];
  private readonly pending = new Set<string>();
  private readonly uploadSlots: Semaphore;
  private readonly uploads = new Set<Promise<void>>();
  private unindexed: IndexFile['packs'] = [];
  private failure?: Error;
  storedBytes = 0;
  packsWritten = 0;

  private readonly repo: Repository;
  private readonly index: ChunkIndex;

  constructor(repo: Repository, index: ChunkIndex, uploads = 2) {
    this.repo = repo;
    this.index = index;
    this.builder = this.newBuilder();
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

  async add(id: Buffer, sealed: Uint8Array, rawLength: number, compression: number): Promise<void> {
    if (this.failure) throw this.failure;
    this.builder.add(id, sealed, rawLength, compression);
    this.storedBytes += sealed.length;
    if (this.builder.size >= this.repo.config.packSize) await this.closePack(true);
  }

  private newBuilder(): PackBuilder {
    // Room for a full pack, its last chunk and its header, so the buffer never has to grow.
    const capacity = this.repo.config.packSize + 2 * this.repo.config.chunkSize;
    return new PackBuilder(this.spareBuffers.pop() ?? Buffer.allocUnsafeSlow(capacity));
  }

  /**
   * Hands the current pack to an upload. `onlyIfFull`: several adds may find the same pack full
   * while they wait for an upload slot; only the first closes it, the others must not close the
   * next, nearly empty one (that made header-only packs).
   */
  private async closePack(onlyIfFull = false): Promise<void> {
    if (this.builder.entries.length === 0) return;
    await this.uploadSlots.acquire();
    if (this.builder.entries.length === 0 || (onlyIfFull && this.builder.size < this.repo.config.packSize)) {
      this.uploadSlots.release();
      return;
    }
    const builder = this.builder;
    this.builder = this.newBuilder();
    const upload = this.upload(builder).finally(() => {
      this.uploadSlots.release();
      this.uploads.delete(upload);
    });
    this.uploads.add(upload);
  }

  private async upload(builder: PackBuilder): Promise<void> {
    try {
      const { id, data, buffer } = builder.finish(this.repo.key.dataKey);
      const size = data.length;
      await this.repo.backend.put(packObjectName(id), data);
      this.spareBuffers.push(buffer);
      const chunks = packEntriesToIndex(builder.entries);
      this.index.addPack(id, size, chunks);
      for (const c of chunks) this.pending.delete(c.id);
      this.unindexed.push({ id, size, chunks });
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
   * After a failed backup: deletes the packs this writer stored that no index file names yet.
   * Nothing can refer to their chunks (other backups find chunks only through index files), so
   * this is safe at any time, and it gives back the space a full disk needs. Packs already named
   * by an index file stay; prune removes them if no recovery point comes to use them.
   */
  async abandon(): Promise<void> {
    while (this.uploads.size > 0) await Promise.allSettled([...this.uploads]);
    const packs = this.unindexed;
    this.unindexed = [];
    for (const p of packs) await this.repo.backend.delete(packObjectName(p.id)).catch(() => {});
  }

  /** Uploads what is left and writes the last index file. After this, every added chunk is findable. */
  async flush(): Promise<void> {
    await this.closePack();
    while (this.uploads.size > 0) await Promise.all(this.uploads);
    if (this.failure) throw this.failure;
    await this.writeIndex();
  }
}
