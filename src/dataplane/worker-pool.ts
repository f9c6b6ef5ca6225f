import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { MasterKey } from '../repository/crypto.ts';
import { DEFAULT_ZSTD_LEVEL } from '../repository/compression.ts';
import type { WorkerReply, WorkerRequest } from './worker-protocol.ts';

interface Pending {
  resolve: (reply: WorkerReply) => void;
  reject: (err: Error) => void;
}

/** One chunk worker thread and the requests it has in flight. */
class ChunkWorker {
  readonly thread: Worker;
  readonly pending = new Map<number, Pending>();

  constructor(key: MasterKey, zstdLevel: number) {
    this.thread = new Worker(new URL('./chunk-worker.ts', import.meta.url), {
      workerData: { dataKey: key.dataKey, idKey: key.idKey, zstdLevel },
    });
    this.thread.on('message', (reply: WorkerReply) => {
      const p = this.pending.get(reply.seq)!;
      this.pending.delete(reply.seq);
      if (reply.error) p.reject(new Error(reply.error));
      else p.resolve(reply);
    });
    this.thread.on('error', (err) => this.failAll(err));
    this.thread.on('exit', (code) => this.failAll(new Error(`chunk worker exited with code ${code}`)));
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  call(req: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    return new Promise((resolve, reject) => {
      this.pending.set(req.seq, { resolve, reject });
      this.thread.postMessage(req, transfer);
    });
  }
}

/**
 * Worker threads for the CPU-heavy part of the pipeline (hash, compress, encrypt and back), one
 * per core by default. A chunk digested on a worker is sealed on the same worker, which holds it.
 */
export class WorkerPool {
  private readonly workers: ChunkWorker[];
  private seq = 0;
  /** Chunk buffers handed back by workers, reused for the next reads instead of new allocations. */
  private readonly spare: ArrayBuffer[] = [];

  constructor(key: MasterKey, size = availableParallelism(), zstdLevel = DEFAULT_ZSTD_LEVEL) {
    this.workers = Array.from({ length: Math.max(1, size) }, () => new ChunkWorker(key, zstdLevel));
  }

  get size(): number {
    return this.workers.length;
  }

  /** A buffer for reading a chunk of `length` bytes; give it to `digest`, which takes it over. */
  buffer(length: number): ArrayBuffer {
    const i = this.spare.findIndex((b) => b.byteLength === length);
    return i >= 0 ? this.spare.splice(i, 1)[0] : new ArrayBuffer(length);
  }

  private keep(reply: WorkerReply): void {
    if (reply.recycled && this.spare.length < 64) this.spare.push(reply.recycled);
  }

  private leastBusy(): ChunkWorker {
    return this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  /** Hashes a chunk; unless it is all zeros, the returned handle must be sealed or dropped. */
  async digest(
    buffer: ArrayBuffer,
    length: number,
  ): Promise<{ zero: true } | { zero: false; id: Buffer; handle: ChunkHandle }> {
    // Zero chunks (most of a sparse disk) are found here with a memcmp: a round trip to a worker
    // costs more than the check.
    if (isAllZero(new Uint8Array(buffer, 0, length))) {
      if (this.spare.length < 64) this.spare.push(buffer);
      return { zero: true };
    }
    const worker = this.leastBusy();
    const seq = ++this.seq;
    const reply = await worker.call({ op: 'digest', seq, buffer, length }, [buffer]);
    this.keep(reply);
    const id = Buffer.from(reply.id!);
    return { zero: false, id, handle: { worker, seq, id } };
  }

  async seal(handle: ChunkHandle): Promise<{ sealed: Buffer; compression: number; rawLength: number }> {
    const reply = await handle.worker.call({ op: 'seal', seq: handle.seq, id: copyOf(handle.id) });
    this.keep(reply);
    return { sealed: Buffer.from(reply.sealed!), compression: reply.compression!, rawLength: reply.rawLength! };
  }

  async drop(handle: ChunkHandle): Promise<void> {
    this.keep(await handle.worker.call({ op: 'drop', seq: handle.seq }));
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
    // A copy: `sealed` is usually a slice of a larger read, which other chunks still need.
    const sealedCopy = sealed.buffer.slice(sealed.byteOffset, sealed.byteOffset + sealed.length) as ArrayBuffer;
    const reply = await this.leastBusy().call(
      { op: 'open', seq: ++this.seq, id: copyOf(id), sealed: sealedCopy, compression, rawLength, where, verifyId },
      [sealedCopy],
    );
    return Buffer.from(reply.plain!);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.thread.terminate()));
  }
}

export interface ChunkHandle {
  worker: ChunkWorker;
  seq: number;
  id: Buffer;
}

let zeros = Buffer.alloc(0);

function isAllZero(data: Uint8Array): boolean {
  if (zeros.length < data.byteLength) zeros = Buffer.alloc(data.byteLength);
  return Buffer.compare(data, zeros.subarray(0, data.byteLength)) === 0;
}

/** Ids stay in use on this side after a call, so they travel as copies (32 bytes). */
function copyOf(id: Buffer): ArrayBuffer {
  return id.buffer.slice(id.byteOffset, id.byteOffset + id.length) as ArrayBuffer;
}
