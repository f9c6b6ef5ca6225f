import { ID_BYTES } from './crypto.ts';

/**
 * A disk's content at one recovery point: one chunk id per chunk position, position i covering
 * bytes [i·chunkSize, min((i+1)·chunkSize, sizeBytes)). An all-zero id marks a chunk that is all
 * zeros (or unallocated), which is never stored. As in Proxmox Backup Server's `.fidx`, an
 * incremental backup copies its parent's index and replaces only the positions that changed.
 */
export class FixedIndex {
  readonly sizeBytes: number;
  readonly chunkSize: number;
  readonly ids: Buffer;

  constructor(sizeBytes: number, chunkSize: number, ids?: Buffer) {
    this.sizeBytes = sizeBytes;
    this.chunkSize = chunkSize;
    const count = FixedIndex.chunkCount(sizeBytes, chunkSize);
    if (ids && ids.length !== count * ID_BYTES)
      throw new Error(`fixed index has ${ids.length / ID_BYTES} ids for ${count} chunk positions`);
    this.ids = ids ?? Buffer.alloc(count * ID_BYTES);
  }

  static chunkCount(sizeBytes: number, chunkSize: number): number {
    return Math.ceil(sizeBytes / chunkSize);
  }

  get count(): number {
    return this.ids.length / ID_BYTES;
  }

  /** Length of the chunk at `position`: chunkSize, except maybe the last one. */
  lengthAt(position: number): number {
    return Math.min(this.chunkSize, this.sizeBytes - position * this.chunkSize);
  }

  idAt(position: number): Buffer {
    return this.ids.subarray(position * ID_BYTES, (position + 1) * ID_BYTES);
  }

  isZero(position: number): boolean {
    const id = this.idAt(position);
    for (let i = 0; i < ID_BYTES; i++) if (id[i] !== 0) return false;
    return true;
  }

  set(position: number, id: Buffer): void {
    id.copy(this.ids, position * ID_BYTES);
  }

  setZero(position: number): void {
    this.ids.fill(0, position * ID_BYTES, (position + 1) * ID_BYTES);
  }

  /**
   * A copy for a disk of `sizeBytes` (which may have grown or shrunk), keeping this index's ids
   * where positions still exist. A last chunk whose length changes is not carried over: its id
   * describes bytes that are no longer the whole chunk, so the caller must read it again.
   */
  resized(sizeBytes: number): { index: FixedIndex; mustRead: number[] } {
    const next = new FixedIndex(sizeBytes, this.chunkSize);
    const keep = Math.min(this.count, next.count);
    this.ids.copy(next.ids, 0, 0, keep * ID_BYTES);
    const mustRead: number[] = [];
    for (let p = 0; p < next.count; p++) {
      if (p >= keep || next.lengthAt(p) !== this.lengthAt(p)) mustRead.push(p);
    }
    return { index: next, mustRead };
  }

  /** Hex ids of the stored (non-zero) chunks. */
  *storedIds(): Generator<string> {
    for (let p = 0; p < this.count; p++) if (!this.isZero(p)) yield this.idAt(p).toString('hex');
  }

  encode(): Buffer {
    const head = Buffer.alloc(MAGIC.length + 8 + 4);
    MAGIC.copy(head);
    head.writeBigUInt64LE(BigInt(this.sizeBytes), MAGIC.length);
    head.writeUInt32LE(this.chunkSize, MAGIC.length + 8);
    return Buffer.concat([head, this.ids]);
  }

  static decode(bytes: Buffer, what: string): FixedIndex {
    if (bytes.length < MAGIC.length + 12 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
      throw new Error(`${what} is not a fixed index (bad magic)`);
    }
    const sizeBytes = Number(bytes.readBigUInt64LE(MAGIC.length));
    const chunkSize = bytes.readUInt32LE(MAGIC.length + 8);
    return new FixedIndex(sizeBytes, chunkSize, Buffer.from(bytes.subarray(MAGIC.length + 12)));
  }
}

const MAGIC = Buffer.from('GSFIDX01');
