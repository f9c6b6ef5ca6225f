import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../../util/durable-file.ts';
import { ObjectNotFoundError, type Backend, type ObjectInfo, type ObjectSpool } from './backend.ts';
import { describeFsError } from './fs-errors.ts';

/** A repository in a local folder. Writes go to a temp file, are fsynced, then renamed into place. */
export class FsBackend implements Backend {
  readonly location: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.location = this.root;
  }

  private path(name: string): string {
    if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(name) || name.split('/').some((p) => p === '..' || p === '.')) {
      throw new Error(`invalid object name ${JSON.stringify(name)}`);
    }
    return join(this.root, ...name.split('/'));
  }

  async create(): Promise<void> {
    if (
      await stat(join(this.root, 'config')).then(
        () => true,
        () => false,
      )
    ) {
      throw new Error(`${this.root} already holds a repository (it has a config); choose an empty folder`);
    }
    await mkdir(this.root, { recursive: true }).catch((err) => {
      throw describeFsError(err, 'create the repository folder', this.root);
    });
  }

  async put(name: string, data: Uint8Array): Promise<void> {
    const path = this.path(name);
    await writeFileAtomic(path, data).catch((err) => {
      throw describeFsError(err, `write ${name} in ${this.root}`, path);
    });
  }

  /**
   * A temp file in the `prefix` folder (`spool.<random>.tmp`, which `list` skips and prune takes for
   * a leftover only once it is older than every live session), fsynced and renamed on publish.
   */
  async spool(prefix: string): Promise<ObjectSpool> {
    const dir = this.path(prefix.replace(/\/$/, ''));
    const tmp = join(dir, `spool.${randomBytes(6).toString('hex')}.tmp`);
    const failed = (err: unknown, what: string, path = tmp) => describeFsError(err, `${what} in ${this.root}`, path);
    await mkdir(dir, { recursive: true }).catch((err) => {
      throw failed(err, 'create a folder', dir);
    });
    const fh = await open(tmp, 'wx', 0o600).catch((err) => {
      throw failed(err, 'start a pack');
    });
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await fh.close();
    };
    return {
      write: async (offset, bytes) => {
        for (let done = 0; done < bytes.length; ) {
          const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, offset + done).catch((err) => {
            throw failed(err, 'write a pack');
          });
          done += bytesWritten;
        }
      },
      publish: async (name) => {
        const path = this.path(name);
        try {
          await fh.sync();
          await close();
          await mkdir(dirname(path), { recursive: true });
          await rename(tmp, path);
        } catch (err) {
          throw failed(err, `write ${name}`, path);
        }
        await fsyncDir(dirname(path));
      },
      discard: async () => {
        await close().catch(() => {});
        await unlink(tmp).catch(() => {});
      },
    };
  }

  async get(name: string, offset?: number, length?: number): Promise<Buffer> {
    let fh;
    try {
      fh = await open(this.path(name), 'r');
    } catch (err) {
      // ENOTDIR: a part of the path is a file (the repository location names a file): no object there.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new ObjectNotFoundError(name, this.location);
      throw describeFsError(err, `read ${name} in ${this.root}`, this.path(name));
    }
    try {
      if (offset === undefined) return await fh.readFile();
      const want = length ?? (await fh.stat()).size - offset;
      const buf = Buffer.allocUnsafe(want);
      let done = 0;
      while (done < want) {
        const { bytesRead } = await fh.read(buf, done, want - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === want ? buf : buf.subarray(0, done);
    } finally {
      await fh.close();
    }
  }

  async stat(name: string): Promise<ObjectInfo | undefined> {
    const s = await stat(this.path(name)).catch(() => undefined);
    return s?.isFile() ? { name, size: s.size, mtime: s.mtime } : undefined;
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.walk(prefix, (name) => !name.endsWith('.tmp'));
  }

  /** Temp files of writes that never finished (a full disk, a killed process): `…/<name>.<random>.tmp`. */
  listLeftovers(): AsyncIterable<ObjectInfo> {
    return this.walk('', (name) => name.endsWith('.tmp'));
  }

  private async *walk(prefix: string, wanted: (name: string) => boolean): AsyncIterable<ObjectInfo> {
    const walk = async function* (this: FsBackend, dir: string): AsyncGenerator<ObjectInfo> {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const full = join(dir, e.name);
        if (e.isDirectory()) yield* walk.call(this, full);
        else if (e.isFile() && wanted(e.name)) {
          const name = full
            .slice(this.root.length + 1)
            .split(sep)
            .join('/');
          if (!name.startsWith(prefix)) continue;
          const s = await stat(full).catch(() => undefined);
          if (s) yield { name, size: s.size, mtime: s.mtime };
        }
      }
    };
    const top = prefix.includes('/')
      ? join(this.root, ...prefix.slice(0, prefix.lastIndexOf('/')).split('/'))
      : this.root;
    yield* walk.call(this, top);
  }

  async delete(name: string): Promise<void> {
    await rm(this.path(name), { force: true }).catch((err) => {
      throw describeFsError(err, `delete ${name} in ${this.root}`, this.path(name));
    });
  }

  async close(): Promise<void> {}
}
