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

/** Where a pack's bytes go as they are added: a buffer in memory, or a file being written. */
export interface PackOutput {
  /** Takes `bytes` for `offset`; it may keep them until it has written them (no copy is made). */
  write(offset: number, bytes: Uint8Array): void;
}

/** A pack held whole in memory, in one buffer that grows as needed and can serve the next pack. */
export class PackBuffer implements PackOutput {
  buffer: Buffer;
  constructor(buffer: Buffer = Buffer.allocUnsafeSlow(1024 * 1024)) {
    this.buffer = buffer;
  }

  write(offset: number, bytes: Uint8Array): void {
    if (offset + bytes.length > this.buffer.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(this.buffer.length * 2, offset + bytes.length));
      this.buffer.copy(bigger, 0, 0, offset);
      this.buffer = bigger;
    }
    this.buffer.set(bytes, offset);
  }
}

/**
 * Collects sealed chunks into one pack, hashing as it goes, and hands the bytes to `output`;
 * `finish` appends the sealed header.
 */
export class PackBuilder {
  readonly entries: PackEntry[] = [];
  private readonly hash: Hash = createHash('sha256');
  readonly output: PackOutput;
  size = 0;

  constructor(output: PackOutput = new PackBuffer()) {
    this.output = output;
  }

  private append(bytes: Uint8Array): void {
    this.output.write(this.size, bytes);
    this.hash.update(bytes);
    this.size += bytes.length;
  }

  /** Adds a sealed chunk, given whole or as parts that are stored back to back. */
  add(id: Buffer, sealed: Uint8Array | readonly Uint8Array[], rawLength: number, compression: number): void {
    const parts = sealed instanceof Uint8Array ? [sealed] : sealed;
    const length = parts.reduce((sum, p) => sum + p.length, 0);
    this.entries.push({ id, offset: this.size, length, rawLength, compression });
    for (const part of parts) this.append(part);
  }

  /** Appends the sealed header; returns the pack's id, the SHA-256 of all its bytes. */
  finish(dataKey: Buffer): string {
    const header = seal(dataKey, encodeHeader(this.entries), HEADER_AAD);
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(header.length);
    this.append(header);
    this.append(trailer);
    return this.hash.digest('hex');
  }
}

/** Builds a pack in memory: its id and its bytes (a view of the builder's buffer). */
export function finishInMemory(builder: PackBuilder, dataKey: Buffer): { id: string; data: Buffer } {
  const id = builder.finish(dataKey);
  if (!(builder.output instanceof PackBuffer)) throw new Error('this pack is not built in memory');
  return { id, data: builder.output.buffer.subarray(0, builder.size) };
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
