import { createHmac, timingSafeEqual } from 'node:crypto';
import type { MasterKey } from './crypto.ts';
import {
  DEFAULT_CHUNK_SIZE,
  DEFAULT_PACK_SIZE,
  FORMAT_NAME,
  FORMAT_VERSION,
  MiB,
  OLDEST_READABLE_VERSION,
} from './format.ts';

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
  /**
   * Version 2 on: HMAC-SHA-256 of the fields above under a key derived from the master key, so
   * that whoever lacks the passphrase cannot change the repository's parameters unseen.
   */
  mac?: string;
}

export function newConfig(id: string, chunkSize = DEFAULT_CHUNK_SIZE, packSize = DEFAULT_PACK_SIZE): RepositoryConfig {
  validateSizes(chunkSize, packSize);
  return { format: FORMAT_NAME, version: FORMAT_VERSION, id, chunkSize, packSize, created: new Date().toISOString() };
}

/** The config's MAC: every field but `mac`, in a fixed order, under HMAC(dataKey, "goldsnap config"). */
export function configMac(config: RepositoryConfig, key: MasterKey): string {
  const macKey = createHmac('sha256', key.dataKey).update('goldsnap config').digest();
  const fields = [config.format, config.version, config.id, config.chunkSize, config.packSize, config.created];
  return createHmac('sha256', macKey).update(JSON.stringify(fields)).digest('hex');
}

/** A config with its MAC, at the current version. */
export function sealConfig(config: RepositoryConfig, key: MasterKey): RepositoryConfig {
  const upgraded = { ...config, version: FORMAT_VERSION };
  delete upgraded.mac;
  return { ...upgraded, mac: configMac(upgraded, key) };
}

/**
 * Throws unless a version-2 config carries the MAC the master key gives it. `expectedMac`, when a
 * key slot made for this config says what it was, also catches a config rewritten as version 1
 * (which has no MAC) to slip a change through.
 */
export function verifyConfig(config: RepositoryConfig, key: MasterKey, location: string, expectedMac?: string): void {
  const altered =
    `the config of ${location} has been altered or damaged (its MAC does not match): ` +
    'do not write to this repository; put back the config from a copy, or ask whoever can write there what changed it';
  if (config.version >= 2 || expectedMac) {
    if (typeof config.mac !== 'string' || !/^[0-9a-f]{64}$/.test(config.mac)) throw new Error(altered);
    const want = Buffer.from(configMac(config, key), 'hex');
    if (!timingSafeEqual(want, Buffer.from(config.mac, 'hex'))) throw new Error(altered);
    if (expectedMac && expectedMac !== config.mac) throw new Error(altered);
  }
}

function validateSizes(chunkSize: number, packSize: number): void {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!pow2(chunkSize) || chunkSize < 64 * 1024 || chunkSize > 64 * MiB) {
    throw new Error(`chunk size ${chunkSize} is not allowed: use a power of two from 64 KiB to 64 MiB (default 1 MiB)`);
  }
  if (!Number.isInteger(packSize) || packSize < chunkSize || packSize > 1024 * MiB) {
    throw new Error(
      `pack size ${packSize} is not allowed: use at least the chunk size and at most 1 GiB (default ${DEFAULT_PACK_SIZE / MiB} MiB)`,
    );
  }
}

export function parseConfig(bytes: Buffer, location: string): RepositoryConfig {
  // Untrusted until checked field by field below.
  let raw: {
    format?: unknown;
    version?: unknown;
    id?: unknown;
    created?: unknown;
    chunkSize?: unknown;
    packSize?: unknown;
  } | null;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Error(
      `${location} has a config object that is not JSON: this is not a goldsnap repository, or it is damaged`,
    );
  }
  if (raw?.format !== FORMAT_NAME)
    throw new Error(`${location} is not a goldsnap repository (its config says format ${JSON.stringify(raw?.format)})`);
  if (typeof raw.version !== 'number' || !Number.isInteger(raw.version) || raw.version < OLDEST_READABLE_VERSION)
    throw new Error(`${location} uses unknown repository format version ${JSON.stringify(raw.version)}`);
  if (raw.version > FORMAT_VERSION) {
    throw new Error(
      `${location} uses repository format ${raw.version}, newer than this goldsnap reads (${FORMAT_VERSION}): upgrade goldsnap`,
    );
  }
  if (typeof raw.id !== 'string' || !/^[0-9a-f]{32}$/.test(raw.id) || typeof raw.created !== 'string') {
    throw new Error(`${location} has a damaged config (its id or creation time is not well-formed)`);
  }
  if (typeof raw.chunkSize !== 'number' || typeof raw.packSize !== 'number') {
    throw new Error(`${location} has a damaged config (its chunk or pack size is not a number)`);
  }
  validateSizes(raw.chunkSize, raw.packSize);
  return raw as unknown as RepositoryConfig;
}
