/** Messages between the pipeline and its chunk workers (see chunk-worker.ts). */
export type WorkerRequest =
  | { op: 'digest'; seq: number; buffer: ArrayBuffer; length: number }
  | { op: 'seal'; seq: number; id: ArrayBuffer }
  | { op: 'drop'; seq: number }
  | {
      op: 'open';
      seq: number;
      id: ArrayBuffer;
      sealed: ArrayBuffer;
      compression: number;
      rawLength: number;
      where: string;
      verifyId: boolean;
    };

export type WorkerReply = {
  seq: number;
  error?: string;
  id?: ArrayBuffer;
  sealed?: ArrayBuffer;
  compression?: number;
  rawLength?: number;
  plain?: ArrayBuffer;
  /** The chunk's plaintext buffer, handed back for reuse once the worker is done with it. */
  recycled?: ArrayBuffer;
};

/**
 * The ArrayBuffer behind `view`, to transfer to another thread without a copy when the view spans
 * all of it (large Buffers own theirs); otherwise a copy, since a small Buffer may sit in Node's
 * shared pool, which must not be detached.
 */
export function transferable(view: Uint8Array): ArrayBuffer {
  if (view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.buffer instanceof ArrayBuffer)
    return view.buffer;
  return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) as ArrayBuffer;
}
