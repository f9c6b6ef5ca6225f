import type { ChunkIndex } from '../repository/chunk-index.ts';
import { decompress } from '../repository/compression.ts';
import type { FixedIndex } from '../repository/fixed-index.ts';
import { openChunk } from '../repository/pack.ts';
import type { Repository } from '../repository/repository.ts';
import { errorMessage } from '../util/errors.ts';

/** A read that touched a chunk the repository cannot give back intact. */
export class DamagedChunkError extends Error {
  readonly position: number;
  constructor(diskName: string, position: number, chunkSize: number, cause: string) {
    super(
      `disk ${diskName}: chunk ${position} (bytes ${position * chunkSize}–${(position + 1) * chunkSize - 1}) cannot be read: ${cause}`,
    );
    this.name = 'DamagedChunkError';
    this.position = position;
  }
}

/** Anything that can be read at an offset: a disk image, or a window of one (a partition). */
export interface ByteSource {
  readonly sizeBytes: number;
  read(offset: number, length: number): Promise<Buffer>;
}

export const DEFAULT_CACHE_CHUNKS = 32;

/**
 * One disk of a recovery point as a random-access image that reads from the repository only the
 * chunks asked for (one ranged read of the pack each), with a bounded LRU cache of decrypted
 * chunks. All-zero chunks are never fetched. Nothing is written anywhere: this is how file-level
 * restore and `repo mount` avoid restoring the disk.
 */
export class LazyDiskImage implements ByteSource {
  readonly name: string;
  readonly sizeBytes: number;
  readonly chunkSize: number;
  /** Chunks fetched from the repository (cache misses). */
  chunksFetched = 0;
  /** Positions that could not be read, with why; a damaged chunk is tried again on every read. */
  readonly damaged = new Map<number, string>();
  private readonly repo: Repository;
  private readonly index: ChunkIndex;
  private readonly fidx: FixedIndex;
  private readonly cacheChunks: number;
  /** LRU: a Map keeps insertion order, so the first key is the least recently used. */
  private readonly cache = new Map<number, Promise<Buffer>>();

  constructor(repo: Repository, index: ChunkIndex, fidx: FixedIndex, name: string, cacheChunks = DEFAULT_CACHE_CHUNKS) {
    this.repo = repo;
    this.index = index;
    this.fidx = fidx;
    this.name = name;
    this.sizeBytes = fidx.sizeBytes;
    this.chunkSize = fidx.chunkSize;
    this.cacheChunks = Math.max(1, cacheChunks);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.sizeBytes) {
      throw new RangeError(
        `read of ${length} bytes at ${offset} is outside disk ${this.name} (${this.sizeBytes} bytes)`,
      );
    }
    const out = Buffer.alloc(length);
    const first = Math.floor(offset / this.chunkSize);
    const last = Math.floor((offset + length - 1) / this.chunkSize);
    const parts = [];
    for (let p = first; p <= last && length > 0; p++) parts.push(this.chunk(p).then((data) => ({ p, data })));
    for (const { p, data } of await Promise.all(parts)) {
      if (!data) continue; // a zero chunk: `out` is zeros already
      const chunkStart = p * this.chunkSize;
      const from = Math.max(offset, chunkStart);
      const to = Math.min(offset + length, chunkStart + data.length);
      data.copy(out, from - offset, from - chunkStart, to - chunkStart);
    }
    return out;
  }

  private async chunk(position: number): Promise<Buffer | undefined> {
    if (this.fidx.isZero(position)) return undefined;
    const cached = this.cache.get(position);
    if (cached) {
      this.cache.delete(position);
      this.cache.set(position, cached);
      return cached;
    }
    const pending = this.fetch(position);
    this.cache.set(position, pending);
    while (this.cache.size > this.cacheChunks) this.cache.delete(this.cache.keys().next().value!);
    pending.catch(() => this.cache.delete(position));
    return pending;
  }

  private async fetch(position: number): Promise<Buffer> {
    const id = this.fidx.idAt(position);
    const hex = id.toString('hex');
    try {
      const location = this.index.get(hex);
      if (!location)
        throw new Error(`chunk ${hex} is in no index: the repository lost data; run \`goldsnap repo check\``);
      this.chunksFetched++;
      const sealed = await this.repo.readPack(location.pack, location.offset, location.length);
      const where = `pack ${location.pack}`;
      const plain = decompress(
        openChunk(this.repo.key.dataKey, id, sealed, where),
        location.compression,
        location.rawLength,
        `chunk ${hex} in ${where}`,
      );
      if (plain.length !== this.fidx.lengthAt(position))
        throw new Error(
          `chunk ${hex} holds ${plain.length} bytes, the disk needs ${this.fidx.lengthAt(position)} there`,
        );
      this.damaged.delete(position);
      return plain;
    } catch (err) {
      const message = errorMessage(err);
      this.damaged.set(position, message);
      throw new DamagedChunkError(this.name, position, this.chunkSize, message);
    }
  }
}

/** A window of a source, e.g. one partition of a disk. */
export class ByteWindow implements ByteSource {
  readonly sizeBytes: number;
  private readonly source: ByteSource;
  private readonly start: number;

  constructor(source: ByteSource, start: number, sizeBytes: number) {
    if (start < 0 || start + sizeBytes > source.sizeBytes)
      throw new RangeError(`window ${start}+${sizeBytes} lies outside its ${source.sizeBytes}-byte source`);
    this.source = source;
    this.start = start;
    this.sizeBytes = sizeBytes;
  }

  read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || offset + length > this.sizeBytes)
      return Promise.reject(
        new RangeError(`read of ${length} bytes at ${offset} is outside a ${this.sizeBytes}-byte partition`),
      );
    return this.source.read(this.start + offset, length);
  }
}
