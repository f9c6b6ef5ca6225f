import { close, open, read } from 'node:fs';

/**
 * Open extent files kept for reuse, at most `max` of them, the least recently used closed first.
 *
 * Serving a 1 MiB range used to open, read and close 16 extent files through FileHandle promises,
 * which cost the emulator's main thread more than the read itself; extents are immutable, so a
 * descriptor opened once reads the same bytes for as long as the file lives. The plain callback
 * `fs` calls are used because FileHandle objects add promise and finalizer work on every call.
 *
 * A descriptor in use by a read is never closed under it: eviction skips it (the cache may then
 * hold more than `max` for a while) and `forget` (the extent's file is being deleted) closes it
 * when its last read ends.
 */
export class ExtentHandles {
  readonly max: number;
  /** Map order is recency: the first entry is the least recently used. */
  #open = new Map<string, CachedFd>();
  /** Closes under way, which `closeAll` waits for. */
  #closing = new Set<Promise<void>>();

  constructor(max: number) {
    this.max = max;
  }

  /** Descriptors currently cached (tests and figures). */
  get size(): number {
    return this.#open.size;
  }

  /**
   * Reads `into.length` bytes at `position` of the file `path` (known as `ext`); fails if the
   * file holds fewer.
   */
  async readInto(ext: string, path: string, into: Buffer, position: number): Promise<void> {
    let h = this.#open.get(ext);
    if (h) {
      this.#open.delete(ext);
      this.#open.set(ext, h);
    } else {
      h = { fd: openForRead(path), users: 0, forgotten: false };
      this.#open.set(ext, h);
      this.#evict();
    }
    h.users++;
    try {
      let fd: number;
      try {
        fd = await h.fd;
      } catch (err) {
        if (this.#open.get(ext) === h) this.#open.delete(ext);
        throw err;
      }
      const bytesRead = await readAt(fd, into, position);
      if (bytesRead !== into.length)
        throw new Error(
          `extent ${ext} is shorter than expected (read ${bytesRead} of ${into.length} from ${position})`,
        );
    } finally {
      h.users--;
      if (h.users === 0 && h.forgotten) void this.#close(h);
    }
  }

  /**
   * The extent's file is being deleted: close its descriptor (once its reads end). Resolves when
   * it is closed, or at once if a read still uses it.
   */
  forget(ext: string): Promise<void> {
    const h = this.#open.get(ext);
    if (!h) return Promise.resolve();
    this.#open.delete(ext);
    h.forgotten = true;
    return h.users === 0 ? this.#close(h) : Promise.resolve();
  }

  /** Closes every descriptor not in use (the others close when their reads end). */
  async closeAll(): Promise<void> {
    for (const ext of [...this.#open.keys()]) void this.forget(ext);
    await Promise.all(this.#closing);
  }

  #close(h: CachedFd): Promise<void> {
    const closing = closeQuietly(h).finally(() => this.#closing.delete(closing));
    this.#closing.add(closing);
    return closing;
  }

  #evict(): void {
    if (this.#open.size <= this.max) return;
    for (const [ext, h] of this.#open) {
      if (this.#open.size <= this.max) return;
      if (h.users > 0) continue;
      void this.forget(ext);
    }
  }
}

interface CachedFd {
  fd: Promise<number>;
  users: number;
  /** Out of the cache: close when the last read ends. */
  forgotten: boolean;
}

function openForRead(path: string): Promise<number> {
  return new Promise((resolve, reject) => open(path, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
}

function readAt(fd: number, into: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    read(fd, into, 0, into.length, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

function closeQuietly(h: CachedFd): Promise<void> {
  return h.fd.then(
    (fd) => new Promise<void>((resolve) => close(fd, () => resolve())),
    () => {},
  );
}
