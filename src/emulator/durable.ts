import { open } from 'node:fs/promises';

export { fsyncDir, writeFileAtomic } from '../util/durable-file.ts';

/** Writes a new file durably (fails if it exists); the caller fsyncs the directory. */
export async function writeNewFile(path: string, data: Buffer): Promise<void> {
  const h = await open(path, 'wx', 0o600);
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
}
