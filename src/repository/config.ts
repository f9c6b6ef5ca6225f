import { DEFAULT_CHUNK_SIZE, DEFAULT_PACK_SIZE, FORMAT_NAME, FORMAT_VERSION, MiB } from './format.ts';

/**
 * The repository's `config` object. Stored in plaintext: it holds nothing secret, and a reader
 * must learn the format version before it can know how to open anything else.
 */
export interface RepositoryConfig {
  format: typeof FORMAT_NAME;
  version: number;
  id: string;
  /** Disk images are cut into chunks of this size, aligned to disk offsets. */
  chunkSize: number;
  /** Packs are closed once they reach this size. */
  packSize: number;
  created: string;
}

export function newConfig(id: string, chunkSize = DEFAULT_CHUNK_SIZE, packSize = DEFAULT_PACK_SIZE): RepositoryConfig {
  validateSizes(chunkSize, packSize);
  return { format: FORMAT_NAME, version: FORMAT_VERSION, id, chunkSize, packSize, created: new Date().toISOString() };
}

function validateSizes(chunkSize: number, packSize: number): void {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!pow2(chunkSize) || chunkSize < 64 * 1024 || chunkSize > 64 * MiB) {
    throw new Error(`chunk size ${chunkSize} is not allowed: use a power of two from 64 KiB to 64 MiB (default 1 MiB)`);
  }
  if (!Number.isInteger(packSize) || packSize < chunkSize || packSize > 1024 * MiB) {
    throw new Error(`pack size ${packSize} is not allowed: use at least the chunk size and at most 1 GiB (default 32 MiB)`);
  }
}

export function parseConfig(bytes: Buffer, location: string): RepositoryConfig {
  let raw: any;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Error(`${location} has a config object that is not JSON: this is not a goldsnap repository, or it is damaged`);
  }
  if (raw?.format !== FORMAT_NAME) throw new Error(`${location} is not a goldsnap repository (its config says format ${JSON.stringify(raw?.format)})`);
  if (raw.version > FORMAT_VERSION) {
    throw new Error(`${location} uses repository format ${raw.version}, newer than this goldsnap reads (${FORMAT_VERSION}): upgrade goldsnap`);
  }
  if (raw.version !== FORMAT_VERSION) throw new Error(`${location} uses unknown repository format version ${raw.version}`);
  validateSizes(raw.chunkSize, raw.packSize);
  return raw as RepositoryConfig;
}
