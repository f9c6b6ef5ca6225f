import { promisify } from 'node:util';
import { constants, zstdCompress, zstdCompressSync, zstdDecompress, zstdDecompressSync } from 'node:zlib';

const zstdCompressOnPool = promisify(zstdCompress);
const zstdDecompressOnPool = promisify(zstdDecompress);
/** zlib streams hand out output in pieces of this many bytes by default; a chunk needs one piece. */
const SLACK = 1024;

/** How a stored blob's plaintext was transformed before sealing. Values are part of the format. */
export const Compression = { none: 0, zstd: 1 } as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

export const DEFAULT_ZSTD_LEVEL = 3;

/** The stored form: zstd's output when it is smaller, the bytes as they are otherwise. */
function smaller(plain: Uint8Array, packed: Uint8Array): { data: Uint8Array; compression: Compression } {
  if (packed.length < plain.length) return { data: packed, compression: Compression.zstd };
  return { data: plain, compression: Compression.none };
}

function unknownCompression(compression: number, what: string): Error {
  return new Error(`${what} uses unknown compression ${compression}; a newer goldsnap wrote it`);
}

function checkedLength(plain: Buffer, rawLength: number | undefined, what: string): Buffer {
  if (rawLength !== undefined && plain.length !== rawLength)
    throw new Error(`${what} holds ${plain.length} bytes, expected ${rawLength}`);
  return plain;
}

/** A stored blob's bytes as they are, without a copy. */
const asBuffer = (data: Uint8Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

/** zstd-compresses, or keeps the bytes as they are when compression would not make them smaller. */
export function compress(
  plain: Uint8Array,
  level = DEFAULT_ZSTD_LEVEL,
): { data: Uint8Array; compression: Compression } {
  return smaller(plain, zstdCompressSync(plain, { params: { [constants.ZSTD_c_compressionLevel]: level } }));
}

/** Undoes `compress`; `rawLength`, when known, bounds the output and is checked. */
export function decompress(data: Uint8Array, compression: number, rawLength: number | undefined, what: string): Buffer {
  if (compression === Compression.none) return checkedLength(asBuffer(data), rawLength, what);
  if (compression !== Compression.zstd) throw unknownCompression(compression, what);
  const plain = zstdDecompressSync(data, rawLength === undefined ? {} : { maxOutputLength: Math.max(rawLength, 1) });
  return checkedLength(plain, rawLength, what);
}

/**
 * `compress`, on libuv's thread pool. The output buffer is sized for the whole chunk, so zstd
 * runs in one pass instead of one thread-pool round trip per 16 KiB of output.
 */
export async function compressAsync(
  plain: Uint8Array,
  level = DEFAULT_ZSTD_LEVEL,
): Promise<{ data: Uint8Array; compression: Compression }> {
  const packed = await zstdCompressOnPool(plain, {
    chunkSize: Math.max(64, plain.length + SLACK),
    params: { [constants.ZSTD_c_compressionLevel]: level },
  });
  return smaller(plain, packed);
}

/** `decompress`, on libuv's thread pool (one pass: the output buffer holds the whole chunk). */
export async function decompressAsync(
  data: Uint8Array,
  compression: number,
  rawLength: number,
  what: string,
): Promise<Buffer> {
  if (compression === Compression.none) return checkedLength(asBuffer(data), rawLength, what);
  if (compression !== Compression.zstd) throw unknownCompression(compression, what);
  const plain = await zstdDecompressOnPool(data, {
    maxOutputLength: Math.max(rawLength, 1),
    chunkSize: Math.max(64, rawLength + SLACK),
  }).catch((err) => {
    throw new Error(`${what} cannot be decompressed: ${err.message}`);
  });
  return checkedLength(plain, rawLength, what);
}
