import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';

/**
 * The repository's secret keys. `dataKey` encrypts everything; `idKey` keys the chunk-id hash so
 * that a chunk id reveals nothing about its content to someone without the passphrase.
 */
export interface MasterKey {
  dataKey: Buffer;
  idKey: Buffer;
}

export const ID_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** Bytes that sealing adds to a plaintext: nonce in front, authentication tag behind. */
export const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES;

export function newMasterKey(): MasterKey {
  return { dataKey: randomBytes(32), idKey: randomBytes(32) };
}

export function masterKeyToBytes(key: MasterKey): Buffer {
  return Buffer.concat([key.dataKey, key.idKey]);
}

export function masterKeyFromBytes(bytes: Buffer): MasterKey {
  if (bytes.length !== 64) throw new Error(`master key has ${bytes.length} bytes, expected 64`);
  return { dataKey: Buffer.from(bytes.subarray(0, 32)), idKey: Buffer.from(bytes.subarray(32)) };
}

/** Chunk id: HMAC-SHA-256 of the plaintext under the repository's id key. */
export function chunkId(idKey: Buffer, plaintext: Uint8Array): Buffer {
  return createHmac('sha256', idKey).update(plaintext).digest();
}

/** Storage id of an object: SHA-256 of its stored (sealed) bytes, so a reader can verify what it got. */
export function storageId(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

/**
 * AES-256-GCM with a random nonce: nonce | ciphertext | tag. The associated data binds a sealed
 * box to what it claims to be (a chunk to its id, an index to the word "index"), so objects
 * cannot be swapped for one another without detection.
 */
export function seal(key: Buffer, plaintext: Uint8Array, associatedData: Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(associatedData);
  const body = cipher.update(plaintext);
  cipher.final();
  return Buffer.concat([nonce, body, cipher.getAuthTag()], NONCE_BYTES + body.length + TAG_BYTES);
}

export class AuthenticationError extends Error {
  constructor(what: string) {
    super(`${what} failed authentication: it is corrupted, truncated or was not written with this repository's key`);
    this.name = 'AuthenticationError';
  }
}

/** Opens a box made by `seal`; throws AuthenticationError naming `what` if it was altered. */
export function unseal(key: Buffer, sealed: Uint8Array, associatedData: Uint8Array, what: string): Buffer {
  if (sealed.length < SEAL_OVERHEAD) throw new AuthenticationError(what);
  const nonce = sealed.subarray(0, NONCE_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(associatedData);
  decipher.setAuthTag(tag);
  const body = decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
  try {
    decipher.final();
  } catch {
    throw new AuthenticationError(what);
  }
  return body;
}
