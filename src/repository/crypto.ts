import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, webcrypto } from 'node:crypto';

const { subtle } = webcrypto;

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

/**
 * The repository keys as WebCrypto keys, for the chunk path: WebCrypto's HMAC and AES-GCM run on
 * libuv's thread pool, so chunks are hashed and sealed on every core without worker threads (each
 * of which costs a JavaScript runtime). Same algorithms, same bytes as `chunkId`, `seal`, `unseal`.
 */
export interface ChunkKeys {
  data: webcrypto.CryptoKey;
  id: webcrypto.CryptoKey;
}

/** WebCrypto's types want views of plain ArrayBuffers; Buffers are, or are copied by Node. */
type View = Uint8Array<ArrayBuffer>;

export async function importChunkKeys(key: MasterKey): Promise<ChunkKeys> {
  const [data, id] = await Promise.all([
    subtle.importKey('raw', key.dataKey, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']),
    subtle.importKey('raw', key.idKey, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']),
  ]);
  return { data, id };
}

/** `chunkId`, off the main thread. */
export async function chunkIdAsync(keys: ChunkKeys, plaintext: Uint8Array): Promise<Buffer> {
  return Buffer.from(await subtle.sign('HMAC', keys.id, plaintext as View));
}

/**
 * `seal`, off the main thread, as its two parts: the nonce, then ciphertext and tag. Stored back to
 * back they are the same box; kept apart they save a copy of every chunk.
 */
export async function sealAsync(
  keys: ChunkKeys,
  plaintext: Uint8Array,
  associatedData: Uint8Array,
): Promise<[nonce: Buffer, body: Uint8Array]> {
  const nonce = randomBytes(NONCE_BYTES);
  const body = await subtle.encrypt(
    { name: 'AES-GCM', iv: nonce, additionalData: associatedData as View },
    keys.data,
    plaintext as View,
  );
  return [nonce, new Uint8Array(body)];
}

/** `unseal`, off the main thread; throws AuthenticationError naming `what` if the box was altered. */
export async function unsealAsync(
  keys: ChunkKeys,
  sealed: Uint8Array,
  associatedData: Uint8Array,
  what: string,
): Promise<Buffer> {
  if (sealed.length < SEAL_OVERHEAD) throw new AuthenticationError(what);
  try {
    const plain = await subtle.decrypt(
      { name: 'AES-GCM', iv: sealed.subarray(0, NONCE_BYTES) as View, additionalData: associatedData as View },
      keys.data,
      sealed.subarray(NONCE_BYTES) as View,
    );
    return Buffer.from(plain);
  } catch {
    throw new AuthenticationError(what);
  }
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
