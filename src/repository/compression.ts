import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

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
