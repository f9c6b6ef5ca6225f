import type { Backend, ObjectInfo } from '../repository/backend/backend.ts';

/**
 * A backend that counts what is read through it, so that file-level restore can show (and its
 * tests prove) that it reads only the objects and ranges it needs, not the whole disk.
 */
export class CountingBackend implements Backend {
  readonly inner: Backend;
  bytesRead = 0;
  requests = 0;

  constructor(inner: Backend) {
    this.inner = inner;
  }

  get location(): string {
    return this.inner.location;
  }

  create(): Promise<void> {
    return this.inner.create();
  }

  put(name: string, data: Uint8Array): Promise<void> {
    return this.inner.put(name, data);
  }

  async get(name: string, offset?: number, length?: number): Promise<Buffer> {
    const data = await this.inner.get(name, offset, length);
    this.bytesRead += data.length;
    this.requests++;
    return data;
  }

  stat(name: string): Promise<ObjectInfo | undefined> {
    return this.inner.stat(name);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }

  delete(name: string): Promise<void> {
    return this.inner.delete(name);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
