import { mkdtemp, rm } from 'node:fs/promises';
import { after } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ComputeManagementClient } from '@azure/arm-compute';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import {
  emulatorClientOptions,
  startEmulator,
  type Emulator,
  type EmulatorConnectionInfo,
} from '../../src/emulator/emulator.ts';

// Every save of the emulators these tests start also compares all records, and fails on a change
// the state's tracking missed (src/emulator/state-changes.ts).
process.env.GOLDSNAP_EMULATOR_CHECK_STATE ??= '1';

export const MiB = 1024 * 1024;
/** Poll fast: the SDK default is 2 s between polls. */
export const FAST = { updateIntervalInMs: 20 };

export async function tempDir(prefix = 'gs-emu-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Makes temporary folders that are all removed when the calling test file ends. */
export function tempDirsRemovedAfter(prefix?: string): () => Promise<string> {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });
  return async () => {
    const { dir, cleanup } = await tempDir(prefix);
    cleanups.push(cleanup);
    return dir;
  };
}

export async function start(dataDir: string): Promise<Emulator> {
  return startEmulator({ dataDir, port: 0 });
}

export function compute(info: EmulatorConnectionInfo): ComputeManagementClient {
  const o = emulatorClientOptions(info);
  return new ComputeManagementClient(o.credential, o.subscriptionId, o.compute);
}

export function pageBlob(info: EmulatorConnectionInfo, sasUrl: string): PageBlobClient {
  return new PageBlobClient(sasUrl, new AnonymousCredential(), emulatorClientOptions(info).blob);
}

export async function download(blob: PageBlobClient, offset: number, count: number): Promise<Buffer> {
  const r = await blob.download(offset, count);
  const chunks: Buffer[] = [];
  for await (const c of r.readableStreamBody!) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export interface ByteRangeLite {
  offset: number;
  length: number;
}

/**
 * Converts the SDK's page ranges to {offset, length}. NOTE: @azure/storage-blob's
 * getPageRanges / getPageRangesDiff report `count = End - Start` (End is inclusive), so the byte
 * length is count + 1.
 */
export function toRanges(list: { offset: number; count?: number }[] | undefined): ByteRangeLite[] {
  return (list ?? []).map((r) => ({ offset: r.offset, length: (r.count ?? 0) + 1 }));
}
