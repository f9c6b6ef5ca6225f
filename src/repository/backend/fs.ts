import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { writeFileAtomic } from '../../util/durable-file.ts';
import { ObjectNotFoundError, type Backend, type ObjectInfo } from './backend.ts';
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
