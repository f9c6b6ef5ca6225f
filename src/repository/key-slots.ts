import { createHash, randomBytes, scrypt } from 'node:crypto';
import { hostname } from 'node:os';
import {
  masterKeyFromBytes,
  masterKeyToBytes,
  seal,
  unseal,
  type MasterKey,
  AuthenticationError,
  SEAL_OVERHEAD,
} from './crypto.ts';

/**
 * A key slot: the master key wrapped (AES-256-GCM) by a key derived from one passphrase with
 * scrypt. A repository can have several slots, so several people or machines can each have a
 * passphrase of their own, and one can be removed without re-encrypting anything.
 */
export interface KeySlot {
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  wrappedKey: string;
  created: string;
  hostname: string;
  /**
   * SHA-256 of the fields that open the slot (format 2 on). Without it a damaged slot and a wrong
   * passphrase look alike: both fail to unwrap.
   */
  checksum?: string;
}

/** What opening a slot gives: the master key, and the MAC of the config the slot was made for. */
export interface OpenedSlot {
  key: MasterKey;
  configMac?: string;
}

/** scrypt cost: about 0.1 s and 32 MiB on a current core, as restic and age choose. */
export const DEFAULT_SCRYPT = { N: 2 ** 15, r: 8, p: 1 };
const WRAP_AAD = Buffer.from('goldsnap master key');
const MASTER_KEY_BYTES = 64;
const CONFIG_MAC_BYTES = 32;

function deriveKey(passphrase: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(passphrase.normalize('NFC'), salt, 32, { N, r, p, maxmem: 256 * N * r + 16 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export function slotChecksum(slot: KeySlot): string {
  return createHash('sha256')
    .update(JSON.stringify([slot.kdf, slot.N, slot.r, slot.p, slot.salt, slot.wrappedKey]))
    .digest('hex');
}

/**
 * Wraps the master key. `configMac` (the config's MAC, format 2) is wrapped with it, so the slot
 * also vouches for the config it was made with.
 */
export async function createKeySlot(
  master: MasterKey,
  passphrase: string,
  cost = DEFAULT_SCRYPT,
  configMac?: string,
): Promise<KeySlot> {
  if (passphrase.length === 0) throw new Error('the passphrase is empty: choose a passphrase for the repository');
  const salt = randomBytes(16);
  const kek = await deriveKey(passphrase, salt, cost.N, cost.r, cost.p);
  const payload = configMac
    ? Buffer.concat([masterKeyToBytes(master), Buffer.from(configMac, 'hex')])
    : masterKeyToBytes(master);
  const slot: KeySlot = {
    kdf: 'scrypt',
    ...cost,
    salt: salt.toString('base64'),
    wrappedKey: seal(kek, payload, WRAP_AAD).toString('base64'),
    created: new Date().toISOString(),
    hostname: hostname(),
  };
  return { ...slot, checksum: slotChecksum(slot) };
}

/**
 * Why this slot is damaged, or undefined when it looks whole. A slot with a checksum is checked
 * against it; an older one only for its shape.
 */
export function keySlotDamage(slot: unknown): string | undefined {
  const s = slot as Partial<KeySlot> | null;
  if (!s || typeof s !== 'object') return 'it is not a JSON object';
  if (s.kdf !== 'scrypt') return `it names an unknown key derivation ${JSON.stringify(s.kdf)}`;
  if (!Number.isInteger(s.N) || !Number.isInteger(s.r) || !Number.isInteger(s.p))
    return 'its scrypt parameters are not numbers';
  if ((s.N! & (s.N! - 1)) !== 0 || s.N! < 2) return 'its scrypt cost N is not a power of two';
  if (typeof s.salt !== 'string' || typeof s.wrappedKey !== 'string') return 'its salt or wrapped key is missing';
  if (s.checksum !== undefined && s.checksum !== slotChecksum(s as KeySlot))
    return 'its content does not match its checksum';
  if (Buffer.from(s.salt, 'base64').length !== 16) return 'its salt is not 16 bytes';
  const wrapped = Buffer.from(s.wrappedKey, 'base64').length - SEAL_OVERHEAD;
  if (wrapped !== MASTER_KEY_BYTES && wrapped !== MASTER_KEY_BYTES + CONFIG_MAC_BYTES)
    return 'its wrapped key has the wrong length';
  return undefined;
}

/** The master key if `passphrase` opens this slot, undefined if it does not. */
export async function openKeySlot(slot: KeySlot, passphrase: string): Promise<OpenedSlot | undefined> {
  if (slot.kdf !== 'scrypt') throw new Error(`key slot uses unknown key derivation ${slot.kdf}`);
  if (!(slot.N <= 2 ** 20 && slot.r <= 32 && slot.p <= 16))
    throw new Error('key slot asks for an unreasonable scrypt cost; refusing it');
  const kek = await deriveKey(passphrase, Buffer.from(slot.salt, 'base64'), slot.N, slot.r, slot.p);
  let payload: Buffer;
  try {
    payload = unseal(kek, Buffer.from(slot.wrappedKey, 'base64'), WRAP_AAD, 'key slot');
  } catch (err) {
    if (err instanceof AuthenticationError) return undefined;
    throw err;
  }
  const key = masterKeyFromBytes(payload.subarray(0, MASTER_KEY_BYTES));
  return payload.length > MASTER_KEY_BYTES
    ? { key, configMac: payload.subarray(MASTER_KEY_BYTES).toString('hex') }
    : { key };
}
