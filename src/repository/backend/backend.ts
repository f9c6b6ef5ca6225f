/**
 * Where repository objects live. Every object is written once under a name and never rewritten;
 * a backend must make a write visible whole or not at all (no reader ever sees half an object).
 *
 * Names are slash-separated relative paths such as `data/ab/ab12…`, `index/…`, `config`.
 */
export interface ObjectInfo {
  name: string;
  size: number;
  /** Last modification time, used by prune for grace periods. */
  mtime: Date;
}

export interface Backend {
  /** A short human description, e.g. `s3:http://127.0.0.1:9000/bucket/prefix`. Never includes secrets. */
  readonly location: string;
  /** How coarse `mtime` is (object stores: a second); absent means about a millisecond. */
  readonly mtimeGranularityMs?: number;
  /** Create the container/folder if needed. Fails if a repository config already exists there. */
  create(): Promise<void>;
  /** Write an object atomically. Overwrites only where the caller means to (session markers). */
  put(name: string, data: Uint8Array): Promise<void>;
  /** Read a whole object, or `length` bytes at `offset`. Throws ObjectNotFoundError when absent. */
  get(name: string, offset?: number, length?: number): Promise<Buffer>;
  /** Size and mtime of one object, or undefined when absent. */
  stat(name: string): Promise<ObjectInfo | undefined>;
  /** Every object whose name starts with `prefix` (e.g. `data/`), in no particular order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /**
   * Leftovers of writes that never finished, which `list` does not show (the filesystem backend's
   * `*.tmp` files); `delete` removes them. Object stores make a PUT whole or not at all and have none.
   */
  listLeftovers?(): AsyncIterable<ObjectInfo>;
  /**
   * Starts an object whose name is known only once it is whole (a pack is named by the hash of its
   * bytes), written where it will live as its bytes come: a folder writes a temp file under
   * `prefix` and renames it. Without this, such objects are built in memory and given to `put`.
   */
  spool?(prefix: string): Promise<ObjectSpool>;
  /** Remove an object; removing an absent object is not an error. */
  delete(name: string): Promise<void>;
  close(): Promise<void>;
}

/** An object being written piece by piece; nobody sees it before `publish`. */
export interface ObjectSpool {
  /** Writes `bytes` at `offset`. Writes may run at the same time, on bytes that do not overlap. */
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /** Makes what was written durable and visible, whole, under `name`. */
  publish(name: string): Promise<void>;
  /** Removes what was written (after a failure). */
  discard(): Promise<void>;
}

export class ObjectNotFoundError extends Error {
  readonly objectName: string;
  constructor(objectName: string, location: string) {
    super(`object ${objectName} not found in ${location}`);
    this.objectName = objectName;
    this.name = 'ObjectNotFoundError';
  }
}
