/**
 * A worker thread of the chunk pipeline. Backup: `digest` computes a chunk's id (zero chunks never
 * come here); the main thread looks the id up, then asks to `seal` it (compress + encrypt) or
 * to `drop` it. The plaintext stays here in between, so it crosses threads only once. Restore:
 * `open` decrypts and decompresses a stored chunk, and can re-hash it to prove its id.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { chunkId, seal } from '../repository/crypto.ts';
import { compress, decompress } from '../repository/compression.ts';
import { chunkAad, openChunk } from '../repository/pack.ts';
import { transferable, type WorkerRequest, type WorkerReply } from './worker-protocol.ts';
import { errorMessage } from '../util/errors.ts';

const dataKey = Buffer.from(workerData.dataKey);
const idKey = Buffer.from(workerData.idKey);
const level: number = workerData.zstdLevel;
const held = new Map<number, Uint8Array>();

function handle(req: WorkerRequest): [WorkerReply, ArrayBuffer[]] {
  switch (req.op) {
    case 'digest': {
      const data = new Uint8Array(req.buffer, 0, req.length);
      held.set(req.seq, data);
      const id = chunkId(idKey, data);
      return [{ seq: req.seq, id: transferable(id) }, []];
    }
    case 'seal': {
      const data = held.get(req.seq)!;
      held.delete(req.seq);
      const { data: body, compression } = compress(data, level);
      const sealed = transferable(seal(dataKey, body, chunkAad(Buffer.from(req.id))));
      const recycled = data.buffer as ArrayBuffer;
      return [{ seq: req.seq, sealed, compression, rawLength: data.byteLength, recycled }, [sealed, recycled]];
    }
    case 'drop': {
      const recycled = held.get(req.seq)!.buffer as ArrayBuffer;
      held.delete(req.seq);
      return [{ seq: req.seq, recycled }, [recycled]];
    }
    case 'open': {
      const id = Buffer.from(req.id);
      const body = openChunk(dataKey, id, new Uint8Array(req.sealed), req.where);
      const plain = decompress(body, req.compression, req.rawLength, `chunk ${id.toString('hex')} in ${req.where}`);
      if (req.verifyId && !chunkId(idKey, plain).equals(id)) {
        throw new Error(`chunk ${id.toString('hex')} in ${req.where} does not hash to its id: its content is wrong`);
      }
      const out = transferable(plain);
      return [{ seq: req.seq, plain: out }, [out]];
    }
  }
}

parentPort!.on('message', (req: WorkerRequest) => {
  try {
    const [reply, transfer] = handle(req);
    parentPort!.postMessage(reply, transfer);
  } catch (err) {
    parentPort!.postMessage({ seq: req.seq, error: errorMessage(err) });
  }
});
