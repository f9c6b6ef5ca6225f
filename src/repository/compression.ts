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

/** zstd-compresses, or keeps the bytes as they are when compression would not make them smaller. */
export function compress(
  plain: Uint8Array,
  level = DEFAULT_ZSTD_LEVEL,
): { data: Uint8Array; compression: Compression } {
  const packed = zstdCompressSync(plain, { params: { [constants.ZSTD_c_compressionLevel]: level } });
  if (packed.length < plain.length) return { data: packed, compression: Compression.zstd };
  return { data: plain, compression: Compression.none };
}

/** Undoes `compress`; `rawLength`, when known, bounds the output and is checked. */
export function decompress(data: Uint8Array, compression: number, rawLength: number | undefined, what: string): Buffer {
  let plain: Buffer;
  if (compression === Compression.none) plain = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  else if (compression === Compression.zstd)
    plain = zstdDecompressSync(data, rawLength === undefined ? {} : { maxOutputLength: Math.max(rawLength, 1) });
  else throw new Error(`${what} uses unknown compression ${compression}; a newer goldsnap wrote it`);
  if (rawLength !== undefined && plain.length !== rawLength)
    throw new Error(`${what} holds ${plain.length} bytes, expected ${rawLength}`);
  return plain;
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
  if (packed.length < plain.length) return { data: packed, compression: Compression.zstd };
  return { data: plain, compression: Compression.none };
}

/** `decompress`, on libuv's thread pool (one pass: the output buffer holds the whole chunk). */
export async function decompressAsync(
  data: Uint8Array,
  compression: number,
  rawLength: number,
  what: string,
): Promise<Buffer> {
  let plain: Buffer;
  if (compression === Compression.none) plain = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  else if (compression === Compression.zstd)
    plain = await zstdDecompressOnPool(data, {
      maxOutputLength: Math.max(rawLength, 1),
      chunkSize: Math.max(64, rawLength + SLACK),
    }).catch((err) => {
      throw new Error(`${what} cannot be decompressed: ${err.message}`);
    });
  else throw new Error(`${what} uses unknown compression ${compression}; a newer goldsnap wrote it`);
  if (plain.length !== rawLength) throw new Error(`${what} holds ${plain.length} bytes, expected ${rawLength}`);
  return plain;
}
