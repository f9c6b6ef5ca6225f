import { randomBytes, scrypt } from 'node:crypto';
import { hostname } from 'node:os';
import { masterKeyFromBytes, masterKeyToBytes, seal, unseal, type MasterKey, AuthenticationError } from './crypto.ts';

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
}

/** scrypt cost: about 0.1 s and 32 MiB on a current core, as restic and age choose. */
export const DEFAULT_SCRYPT = { N: 2 ** 15, r: 8, p: 1 };
const WRAP_AAD = Buffer.from('goldsnap master key');

function deriveKey(passphrase: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(passphrase.normalize('NFC'), salt, 32, { N, r, p, maxmem: 256 * N * r + 16 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key));
  });
}

export async function createKeySlot(master: MasterKey, passphrase: string, cost = DEFAULT_SCRYPT): Promise<KeySlot> {
  if (passphrase.length === 0) throw new Error('the passphrase is empty: choose a passphrase for the repository');
  const salt = randomBytes(16);
  const kek = await deriveKey(passphrase, salt, cost.N, cost.r, cost.p);
  return {
    kdf: 'scrypt', ...cost,
    salt: salt.toString('base64'),
    wrappedKey: seal(kek, masterKeyToBytes(master), WRAP_AAD).toString('base64'),
    created: new Date().toISOString(),
    hostname: hostname(),
  };
}

/** The master key if `passphrase` opens this slot, undefined if it does not. */
export async function openKeySlot(slot: KeySlot, passphrase: string): Promise<MasterKey | undefined> {
  if (slot.kdf !== 'scrypt') throw new Error(`key slot uses unknown key derivation ${slot.kdf}`);
  if (!(slot.N <= 2 ** 20 && slot.r <= 32 && slot.p <= 16)) throw new Error('key slot asks for an unreasonable scrypt cost; refusing it');
  const kek = await deriveKey(passphrase, Buffer.from(slot.salt, 'base64'), slot.N, slot.r, slot.p);
  try {
    return masterKeyFromBytes(unseal(kek, Buffer.from(slot.wrappedKey, 'base64'), WRAP_AAD, 'key slot'));
  } catch (err) {
    if (err instanceof AuthenticationError) return undefined;
    throw err;
  }
}
