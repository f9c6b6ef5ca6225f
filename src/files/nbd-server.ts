import { createServer, type Server, type Socket } from 'node:net';
import type { ByteSource } from './lazy-image.ts';

/**
 * A read-only NBD server (the protocol of nbd-server, qemu-nbd and nbdkit: fixed newstyle
 * handshake, NBD_OPT_GO / EXPORT_NAME, simple replies) on a Unix socket, serving named exports
 * from byte sources. `nbdfuse` turns an export into a file through FUSE, which is how a recovery
 * point's disk becomes something fuse2fs, ntfs-3g or any tool can open, read lazily.
 */
const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;

const FLAG_FIXED_NEWSTYLE = 1;
const FLAG_NO_ZEROES = 2;
const CLIENT_NO_ZEROES = 2;

const OPT_EXPORT_NAME = 1;
const OPT_ABORT = 2;
const OPT_LIST = 3;
const OPT_INFO = 6;
const OPT_GO = 7;

const REP_ACK = 1;
const REP_SERVER = 2;
const REP_INFO = 3;
const REP_ERR_UNSUP = 0x80000001;
const REP_ERR_INVALID = 0x80000003;
const REP_ERR_UNKNOWN = 0x80000006;

const TX_HAS_FLAGS = 1;
const TX_READ_ONLY = 2;
const TX_SEND_FLUSH = 4;
const TX_CAN_MULTI_CONN = 1 << 8;
const TX_FLAGS = TX_HAS_FLAGS | TX_READ_ONLY | TX_SEND_FLUSH | TX_CAN_MULTI_CONN;

const CMD_READ = 0;
const CMD_WRITE = 1;
const CMD_DISC = 2;
const CMD_FLUSH = 3;

const EPERM = 1;
const EIO = 5;
const EINVAL = 22;

/** Reads far larger than this are refused, as the NBD spec lets a server do (32 MiB is the usual limit). */
const MAX_READ = 32 * 1024 * 1024;

export interface NbdServerEvents {
  /** A read failed (e.g. a damaged chunk): the client got EIO. */
  onReadError?: (exportName: string, offset: number, length: number, err: Error) => void;
}

export class NbdServer {
  readonly socketPath: string;
  private readonly exports: Map<string, ByteSource>;
  private readonly events: NbdServerEvents;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  private constructor(socketPath: string, exports: Map<string, ByteSource>, events: NbdServerEvents) {
    this.socketPath = socketPath;
    this.exports = exports;
    this.events = events;
    this.server = createServer((socket) => this.serve(socket));
  }

  static async listen(
    socketPath: string,
    exports: Map<string, ByteSource>,
    events: NbdServerEvents = {},
  ): Promise<NbdServer> {
    const s = new NbdServer(socketPath, exports, events);
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(socketPath, () => {
        s.server.off('error', reject);
        resolve();
      });
    });
    return s;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const reader = new SocketReader(socket);
    this.session(socket, reader).catch(() => socket.destroy());
  }

  private async session(socket: Socket, reader: SocketReader): Promise<void> {
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(NBDMAGIC, 0);
    hello.writeBigUInt64BE(IHAVEOPT, 8);
    hello.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
    socket.write(hello);
    const clientFlags = (await reader.read(4)).readUInt32BE(0);

    // Option haggling, until the client picks an export.
    let source: ByteSource | undefined;
    let exportName = '';
    while (!source) {
      const head = await reader.read(16);
      if (head.readBigUInt64BE(0) !== IHAVEOPT) throw new Error('bad option magic');
      const option = head.readUInt32BE(8);
      const data = await reader.read(head.readUInt32BE(12));
      const reply = (type: number, payload: Buffer = Buffer.alloc(0)) => {
        const h = Buffer.alloc(20);
        h.writeBigUInt64BE(REPLY_MAGIC, 0);
        h.writeUInt32BE(option, 8);
        h.writeUInt32BE(type, 12);
        h.writeUInt32BE(payload.length, 16);
        socket.write(Buffer.concat([h, payload]));
      };
      if (option === OPT_EXPORT_NAME) {
        exportName = data.toString('utf8');
        source = this.exports.get(exportName);
        if (!source) {
          socket.destroy();
          return;
        }
        const info = Buffer.alloc(10 + (clientFlags & CLIENT_NO_ZEROES ? 0 : 124));
        info.writeBigUInt64BE(BigInt(source.sizeBytes), 0);
        info.writeUInt16BE(TX_FLAGS, 8);
        socket.write(info);
      } else if (option === OPT_ABORT) {
        reply(REP_ACK);
        socket.end();
        return;
      } else if (option === OPT_LIST) {
        for (const name of this.exports.keys()) {
          const n = Buffer.from(name, 'utf8');
          const payload = Buffer.alloc(4 + n.length);
          payload.writeUInt32BE(n.length, 0);
          n.copy(payload, 4);
          reply(REP_SERVER, payload);
        }
        reply(REP_ACK);
      } else if (option === OPT_GO || option === OPT_INFO) {
        if (data.length < 6) {
          reply(REP_ERR_INVALID);
          continue;
        }
        const nameLength = data.readUInt32BE(0);
        const name = data.toString('utf8', 4, 4 + nameLength);
        const wanted = this.exports.get(name);
        if (!wanted) {
          reply(REP_ERR_UNKNOWN, Buffer.from(`no export named "${name}"`));
          continue;
        }
        const info = Buffer.alloc(12);
        info.writeUInt16BE(0, 0); // NBD_INFO_EXPORT
        info.writeBigUInt64BE(BigInt(wanted.sizeBytes), 2);
        info.writeUInt16BE(TX_FLAGS, 10);
        reply(REP_INFO, info);
        reply(REP_ACK);
        if (option === OPT_GO) {
          source = wanted;
          exportName = name;
        }
      } else {
        // Structured replies, meta contexts, TLS, extended headers: not offered; simple replies do.
        reply(REP_ERR_UNSUP);
      }
    }

    // Transmission: requests may be answered out of order, each reply carries its handle.
    for (;;) {
      const req = await reader.read(28);
      if (req.readUInt32BE(0) !== REQUEST_MAGIC) throw new Error('bad request magic');
      const type = req.readUInt16BE(6);
      const handle = req.subarray(8, 16);
      const offset = Number(req.readBigUInt64BE(16));
      const length = req.readUInt32BE(24);
      const answer = (error: number, data?: Buffer) => {
        const h = Buffer.alloc(16);
        h.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
        h.writeUInt32BE(error, 4);
        handle.copy(h, 8);
        socket.write(data ? Buffer.concat([h, data]) : h);
      };
      if (type === CMD_DISC) {
        socket.end();
        return;
      }
      if (type === CMD_WRITE) {
        await reader.read(length);
        answer(EPERM);
        continue;
      }
      if (type === CMD_FLUSH) {
        answer(0);
        continue;
      }
      if (type !== CMD_READ) {
        answer(EINVAL);
        continue;
      }
      if (length > MAX_READ || offset + length > source.sizeBytes) {
        answer(EINVAL);
        continue;
      }
      source.read(offset, length).then(
        (data) => answer(0, data),
        (err: Error) => {
          this.events.onReadError?.(exportName, offset, length, err);
          answer(EIO);
        },
      );
    }
  }
}

/** Reads exact byte counts from a socket, in order. */
class SocketReader {
  private buffered: Buffer[] = [];
  private length = 0;
  private waiting?: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void };
  private ended?: Error;

  constructor(socket: Socket) {
    socket.on('data', (chunk) => {
      this.buffered.push(chunk);
      this.length += chunk.length;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = new Error('connection closed');
      this.wake();
    });
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting = { n, resolve, reject };
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiting;
    if (!w) return;
    if (this.length >= w.n) {
      const all = this.buffered.length === 1 ? this.buffered[0] : Buffer.concat(this.buffered);
      this.buffered = all.length > w.n ? [all.subarray(w.n)] : [];
      this.length = all.length - w.n;
      this.waiting = undefined;
      w.resolve(all.subarray(0, w.n));
    } else if (this.ended) {
      this.waiting = undefined;
      w.reject(this.ended);
    }
  }
}
