import { createHash, type Hash } from 'node:crypto';
import { ID_BYTES, seal, unseal } from './crypto.ts';

/**
 * A pack file holds many sealed chunks back to back, then a sealed header listing them, then the
 * header's length as a little-endian u32:
 *
 *   [blob 0][blob 1]…[blob n-1][sealed header][u32 header length]
 *
 * The header goes last so a pack can be written in one pass; it makes a pack self-describing, so
 * the index can be rebuilt from packs alone.
 */
export interface PackEntry {
  id: Buffer;
  offset: number;
  /** Stored (sealed) length. */
  length: number;
  /** Length of the plaintext chunk. */
  rawLength: number;
  compression: number;
}

const HEADER_AAD = Buffer.from('goldsnap pack header');
const ENTRY_BYTES = 1 + 1 + ID_BYTES + 4 + 4;
const BLOB_TYPE_CHUNK = 0;

/**
 * Collects sealed chunks into one pack, in one buffer that grows as needed and can be reused for
 * the next pack once this one is stored; hashes as it goes. `finish` appends the sealed header.
 */
export class PackBuilder {
  readonly entries: PackEntry[] = [];
  private readonly hash: Hash = createHash('sha256');
  private buffer: Buffer;
  size = 0;

  constructor(buffer: Buffer = Buffer.allocUnsafeSlow(1024 * 1024)) {
    this.buffer = buffer;
  }

  private reserve(bytes: number): void {
    if (this.size + bytes <= this.buffer.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.buffer.length * 2, this.size + bytes));
    this.buffer.copy(bigger, 0, 0, this.size);
    this.buffer = bigger;
  }

  private append(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.size);
    this.hash.update(bytes);
    this.size += bytes.length;
  }

  add(id: Buffer, sealed: Uint8Array, rawLength: number, compression: number): void {
    this.entries.push({ id, offset: this.size, length: sealed.length, rawLength, compression });
    this.append(sealed);
  }

  /** The pack's bytes (a view of the builder's buffer) and its id, the SHA-256 of those bytes. */
  finish(dataKey: Buffer): { id: string; data: Buffer; buffer: Buffer } {
    const header = seal(dataKey, encodeHeader(this.entries), HEADER_AAD);
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(header.length);
    this.append(header);
    this.append(trailer);
    return { id: this.hash.digest('hex'), data: this.buffer.subarray(0, this.size), buffer: this.buffer };
  }
}

function encodeHeader(entries: PackEntry[]): Buffer {
  const out = Buffer.alloc(entries.length * ENTRY_BYTES);
  entries.forEach((e, i) => {
    let o = i * ENTRY_BYTES;
    o = out.writeUInt8(BLOB_TYPE_CHUNK, o);
    o = out.writeUInt8(e.compression, o);
    o += e.id.copy(out, o);
    o = out.writeUInt32LE(e.length, o);
    out.writeUInt32LE(e.rawLength, o);
  });
  return out;
}

/** Reads the header of a pack given its last bytes (`tail`, which must include the whole header). */
export function decodePackHeader(dataKey: Buffer, tail: Buffer, packId: string, packSize: number): PackEntry[] {
  if (tail.length < 4) throw new Error(`pack ${packId} is too short (${tail.length} bytes) to hold a header`);
  const headerLength = tail.readUInt32LE(tail.length - 4);
  if (headerLength + 4 > tail.length) throw new HeaderBeyondTail(headerLength + 4);
  const header = unseal(
    dataKey,
    tail.subarray(tail.length - 4 - headerLength, tail.length - 4),
    HEADER_AAD,
    `header of pack ${packId}`,
  );
  if (header.length % ENTRY_BYTES !== 0)
    throw new Error(`header of pack ${packId} has a length that is not a whole number of entries`);
  const entries: PackEntry[] = [];
  let offset = 0;
  for (let o = 0; o < header.length; o += ENTRY_BYTES) {
    const compression = header.readUInt8(o + 1);
    const id = Buffer.from(header.subarray(o + 2, o + 2 + ID_BYTES));
    const length = header.readUInt32LE(o + 2 + ID_BYTES);
    const rawLength = header.readUInt32LE(o + 6 + ID_BYTES);
    entries.push({ id, offset, length, rawLength, compression });
    offset += length;
  }
  if (offset + headerLength + 4 !== packSize) {
    throw new Error(
      `pack ${packId} is ${packSize} bytes but its header describes ${offset + headerLength + 4}: the pack is damaged`,
    );
  }
  return entries;
}

/** Thrown when the tail read was too short; carries how many bytes the header really needs. */
export class HeaderBeyondTail extends Error {
  readonly needed: number;
  constructor(needed: number) {
    super(`pack header needs the last ${needed} bytes`);
    this.needed = needed;
  }
}

/** Associated data for a chunk's seal: its id, so a chunk cannot be passed off as another. */
export function chunkAad(id: Buffer): Buffer {
  return id;
}

export function openChunk(dataKey: Buffer, id: Buffer, sealed: Uint8Array, where: string): Buffer {
  return unseal(dataKey, sealed, chunkAad(id), `chunk ${id.toString('hex')} in ${where}`);
}
