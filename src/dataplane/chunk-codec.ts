import { availableParallelism } from 'node:os';
import { compressAsync, DEFAULT_ZSTD_LEVEL, decompressAsync } from '../repository/compression.ts';
import {
  chunkIdAsync,
  importChunkKeys,
  sealAsync,
  unsealAsync,
  type ChunkKeys,
  type MasterKey,
} from '../repository/crypto.ts';
import { chunkAad } from '../repository/pack.ts';

/**
 * The CPU-heavy part of the chunk pipeline: hash, compress, encrypt, and back. Every step runs on
 * libuv's thread pool (WebCrypto's HMAC and AES-GCM, zlib's async zstd), so chunks are worked on
 * on every core while the main thread only reads, looks ids up and packs. Worker threads did this
 * before; each cost a JavaScript runtime and a zstd context, about 90 MiB, for no gain in speed.
 *
 * `size` is how many cores' worth of chunks the pipelines keep in flight; the thread pool itself
 * has UV_THREADPOOL_SIZE threads (the CLI sets it from the core count before the thread pool starts).
 */
export class ChunkCodec {
  readonly size: number;
  private readonly zstdLevel: number;
  private readonly keys: Promise<ChunkKeys>;
  /** Chunk buffers done with, reused for the next reads instead of new allocations. */
  private readonly spare: ArrayBuffer[] = [];

  constructor(key: MasterKey, size = availableParallelism(), zstdLevel = DEFAULT_ZSTD_LEVEL) {
    this.size = Math.max(1, size);
    this.zstdLevel = zstdLevel;
    this.keys = importChunkKeys(key);
    // A failure surfaces at the first use; this keeps it from being an unhandled rejection first.
    this.keys.catch(() => {});
  }

  /** A buffer for reading a chunk of `length` bytes; give it to `digest`, which takes it over. */
  buffer(length: number): ArrayBuffer {
    const i = this.spare.findIndex((b) => b.byteLength === length);
    return i >= 0 ? this.spare.splice(i, 1)[0] : new ArrayBuffer(length);
  }

  private recycle(buffer: ArrayBuffer): void {
    // More spares than chunks in flight would never be used.
    if (this.spare.length < this.size * 8) this.spare.push(buffer);
  }

  /** Hashes a chunk; unless it is all zeros, the returned handle must be sealed or dropped. */
  async digest(
    buffer: ArrayBuffer,
    length: number,
  ): Promise<{ zero: true } | { zero: false; id: Buffer; handle: ChunkHandle }> {
    const data = new Uint8Array(buffer, 0, length);
    // Zero chunks (most of a sparse disk) are found with a memcmp, cheaper than a hash.
    if (isAllZero(data)) {
      this.recycle(buffer);
      return { zero: true };
    }
    const id = await chunkIdAsync(await this.keys, data);
    return { zero: false, id, handle: { buffer, length, id } };
  }

  /** Compresses and encrypts a chunk; `sealed` is the box in parts, to be stored back to back. */
  async seal(
    handle: ChunkHandle,
  ): Promise<{ sealed: readonly Uint8Array[]; sealedLength: number; compression: number; rawLength: number }> {
    const data = new Uint8Array(handle.buffer, 0, handle.length);
    const { data: body, compression } = await compressAsync(data, this.zstdLevel);
    const sealed = await sealAsync(await this.keys, body, chunkAad(handle.id));
    this.recycle(handle.buffer);
    return { sealed, sealedLength: sealed[0].length + sealed[1].length, compression, rawLength: handle.length };
  }

  async drop(handle: ChunkHandle): Promise<void> {
    this.recycle(handle.buffer);
  }

  /** Decrypts and decompresses a stored chunk; with `verifyId`, also re-hashes it against its id. */
  async open(
    id: Buffer,
    sealed: Buffer,
    compression: number,
    rawLength: number,
    where: string,
    verifyId = false,
  ): Promise<Buffer> {
    const keys = await this.keys;
    const what = `chunk ${id.toString('hex')} in ${where}`;
    const body = await unsealAsync(keys, sealed, chunkAad(id), what);
    const plain = await decompressAsync(body, compression, rawLength, what);
    if (verifyId && !(await chunkIdAsync(keys, plain)).equals(id)) {
      throw new Error(`${what} does not hash to its id: its content is wrong`);
    }
    return plain;
  }
}

/** A hashed chunk waiting to be sealed or dropped: its plaintext buffer stays with the codec. */
export interface ChunkHandle {
  buffer: ArrayBuffer;
  length: number;
  id: Buffer;
}

let zeros = Buffer.alloc(0);

function isAllZero(data: Uint8Array): boolean {
  if (zeros.length < data.byteLength) zeros = Buffer.alloc(data.byteLength);
  return Buffer.compare(data, zeros.subarray(0, data.byteLength)) === 0;
}
