import { ObjectNotFoundError, type Backend } from './backend/backend.ts';
import { ChunkIndex, validateIndexFile, type IndexFile } from './chunk-index.ts';
import { compress, decompress } from './compression.ts';
import { newConfig, parseConfig, sealConfig, verifyConfig, type RepositoryConfig } from './config.ts';
import { newMasterKey, randomHex, seal, storageId, unseal, type MasterKey } from './crypto.ts';
import { FixedIndex } from './fixed-index.ts';
import {
  CONFIG_NAME,
  FORMAT_VERSION,
  KEYS_PREFIX,
  ObjectType,
  idOfName,
  objectName,
  packObjectName,
} from './format.ts';
import { createKeySlot, keySlotDamage, openKeySlot, type KeySlot } from './key-slots.ts';
import { validateRecoveryPoint, type RecoveryPoint } from './recovery-point.ts';
import { mapLimit } from './concurrency.ts';

export class WrongPassphraseError extends Error {
  constructor(location: string) {
    super(`wrong passphrase: none of the key slots of ${location} opens with it`);
    this.name = 'WrongPassphraseError';
  }
}

/** No slot opened, and some are damaged: maybe the one this passphrase was for. */
export class DamagedKeySlotError extends Error {
  constructor(location: string, damaged: { id: string; why: string }[]) {
    const list = damaged.map((d) => `keys/${d.id} (${d.why})`).join(', ');
    super(
      `key slot damaged in ${location}: ${list}; no undamaged slot opens with this passphrase. ` +
        'If the passphrase is right, it belonged to the damaged slot: open the repository with the passphrase of another slot, ' +
        'or put the damaged file back from a copy',
    );
    this.name = 'DamagedKeySlotError';
  }
}

export class DamagedIndexError extends Error {
  readonly indexFile: string;
  constructor(id: string, cause: Error) {
    super(
      `index file ${id} cannot be read (${cause.message}): run \`goldsnap repo repair index\` to rebuild the index from the packs' headers`,
    );
    this.name = 'DamagedIndexError';
    this.indexFile = id;
  }
}

export interface RecoveryPointEntry {
  id: string;
  point: RecoveryPoint;
}

/**
 * An opened repository: the backend, the config and the master key. Knows how objects are sealed
 * and named; the backup and restore pipelines, check and prune build on it.
 */
export class Repository {
  readonly backend: Backend;
  readonly config: RepositoryConfig;
  readonly key: MasterKey;

  private constructor(backend: Backend, config: RepositoryConfig, key: MasterKey) {
    this.backend = backend;
    this.config = config;
    this.key = key;
  }

  static async init(
    backend: Backend,
    passphrase: string,
    sizes: { chunkSize?: number; packSize?: number } = {},
  ): Promise<Repository> {
    const key = newMasterKey();
    const config = sealConfig(newConfig(randomHex(16), sizes.chunkSize, sizes.packSize), key);
    const slot = await createKeySlot(key, passphrase, undefined, config.mac);
    await backend.create();
    // The key slot goes first: a config without a key would be a repository nobody can open.
    await backend.put(`${KEYS_PREFIX}${randomHex(8)}`, Buffer.from(JSON.stringify(slot, null, 2)));
    await backend.put(CONFIG_NAME, Buffer.from(JSON.stringify(config, null, 2)));
    return new Repository(backend, config, key);
  }

  static async open(backend: Backend, passphrase: string): Promise<Repository> {
    let configBytes: Buffer;
    try {
      configBytes = await backend.get(CONFIG_NAME);
    } catch (err) {
      if (err instanceof ObjectNotFoundError) {
        throw new Error(
          `there is no goldsnap repository at ${backend.location}: create one with \`goldsnap repo init\``,
        );
      }
      throw err;
    }
    const config = parseConfig(configBytes, backend.location);
    const { slots, damaged } = await readKeySlots(backend);
    for (const slot of slots) {
      const opened = await openKeySlot(slot.slot, passphrase);
      if (!opened) continue;
      verifyConfig(config, opened.key, backend.location, opened.configMac);
      const repo = new Repository(backend, config, opened.key);
      repo.damagedKeySlots = damaged;
      return repo;
    }
    if (damaged.length > 0) throw new DamagedKeySlotError(backend.location, damaged);
    throw new WrongPassphraseError(backend.location);
  }

  /** Key slots found damaged when the repository was opened (another slot opened it). */
  damagedKeySlots: { id: string; why: string }[] = [];

  /**
   * Upgrades a format-1 repository: writes the config again with its MAC (format 2), and a new
   * key slot for this passphrase that vouches for that config; the slot that opened it goes.
   * Other slots keep working. Goldsnap before format 2 cannot open the repository afterwards.
   */
  async migrate(passphrase: string, openedWith?: string): Promise<{ from: number; to: number }> {
    const from = this.config.version;
    if (from >= FORMAT_VERSION) return { from, to: from };
    const sealed = sealConfig(this.config, this.key);
    const id = randomHex(8);
    // The new slot goes first: if the config write fails after it, nothing is lost.
    await this.backend.put(
      `${KEYS_PREFIX}${id}`,
      Buffer.from(JSON.stringify(await createKeySlot(this.key, passphrase, undefined, sealed.mac), null, 2)),
    );
    await this.backend.put(CONFIG_NAME, Buffer.from(JSON.stringify(sealed, null, 2)));
    if (openedWith) await this.backend.delete(`${KEYS_PREFIX}${openedWith}`);
    return { from, to: sealed.version };
  }

  /** The id of the key slot `passphrase` opens. */
  async keySlotOf(passphrase: string): Promise<string | undefined> {
    for (const { id, slot } of (await readKeySlots(this.backend)).slots)
      if (await openKeySlot(slot, passphrase)) return id;
    return undefined;
  }

  get location(): string {
    return this.backend.location;
  }

  // ---- key slots

  async addKeySlot(passphrase: string): Promise<string> {
    const id = randomHex(8);
    await this.backend.put(
      `${KEYS_PREFIX}${id}`,
      Buffer.from(JSON.stringify(await createKeySlot(this.key, passphrase, undefined, this.config.mac), null, 2)),
    );
    return id;
  }

  async listKeySlots(): Promise<{ id: string; slot: KeySlot }[]> {
    return (await readKeySlots(this.backend)).slots;
  }

  async removeKeySlot(id: string): Promise<void> {
    const { slots, damaged } = await readKeySlots(this.backend);
    if (!slots.some((s) => s.id === id) && !damaged.some((d) => d.id === id))
      throw new Error(`there is no key slot ${id}; \`goldsnap repo key list\` shows them`);
    if (slots.every((s) => s.id === id))
      throw new Error('refusing to remove the last key slot: the repository could never be opened again');
    await this.backend.delete(`${KEYS_PREFIX}${id}`);
  }

  // ---- sealed objects: content-addressed (index, fidx, snapshots) or named (sessions, prune plans)

  sealObject(type: ObjectType, plaintext: Uint8Array): Buffer {
    const { data, compression } = compress(plaintext);
    const body = Buffer.concat([Buffer.of(compression), data]);
    return seal(this.key.dataKey, body, Buffer.from(type));
  }

  openObject(type: ObjectType, sealed: Buffer, what: string): Buffer {
    const body = unseal(this.key.dataKey, sealed, Buffer.from(type), what);
    return decompress(body.subarray(1), body[0], undefined, what);
  }

  /** Stores a sealed object under the SHA-256 of its bytes and returns that id. */
  async putObject(type: ObjectType, plaintext: Uint8Array): Promise<string> {
    const sealed = this.sealObject(type, plaintext);
    const id = storageId(sealed);
    await this.backend.put(objectName(type, id), sealed);
    return id;
  }

  async putNamedObject(type: ObjectType, id: string, plaintext: Uint8Array): Promise<void> {
    await this.backend.put(objectName(type, id), this.sealObject(type, plaintext));
  }

  async getObject(type: ObjectType, id: string): Promise<Buffer> {
    const sealed = await this.backend.get(objectName(type, id));
    return this.openObject(type, sealed, `${type}/${id}`);
  }

  async getJson<T>(type: ObjectType, id: string): Promise<T> {
    return JSON.parse((await this.getObject(type, id)).toString('utf8')) as T;
  }

  async listIds(type: ObjectType): Promise<{ id: string; size: number; mtime: Date }[]> {
    const out = [];
    for await (const info of this.backend.list(`${type}/`))
      out.push({ id: idOfName(info.name), size: info.size, mtime: info.mtime });
    return out;
  }

  // ---- index

  async readIndexFiles(): Promise<{ id: string; file: IndexFile }[]> {
    const ids = await this.listIds(ObjectType.index);
    return mapLimit(ids, 8, async ({ id }) => ({
      id,
      file: validateIndexFile(await this.getJson(ObjectType.index, id), id),
    }));
  }

  /** Every index file that can be read, and apart, those that cannot (damaged). */
  async readIndexFilesReporting(): Promise<{
    files: { id: string; file: IndexFile }[];
    damaged: { id: string; error: Error }[];
  }> {
    const files: { id: string; file: IndexFile }[] = [];
    const damaged: { id: string; error: Error }[] = [];
    await mapLimit(await this.listIds(ObjectType.index), 8, async ({ id }) => {
      try {
        files.push({ id, file: validateIndexFile(await this.getJson(ObjectType.index, id), id) });
      } catch (err) {
        // Deleted between list and read: prune replaced it. Anything else: damage.
        if (!(err instanceof ObjectNotFoundError)) damaged.push({ id, error: err as Error });
      }
    });
    return { files, damaged };
  }

  /**
   * The chunk index from all index files. Index files named as superseded by another (prune's
   * rewrite, `repair index`) are skipped, as are packs in `excludePacks` (packs a pending prune
   * will delete). A damaged index file that is not superseded throws, naming the repair, unless
   * `onDamaged` is given: then it is reported there and left out (a restore that needs none of
   * its chunks can go on).
   */
  async loadIndex(
    excludePacks: ReadonlySet<string> = new Set(),
    onDamaged?: (id: string, err: Error) => void,
  ): Promise<ChunkIndex> {
    const { files, damaged } = await this.readIndexFilesReporting();
    const superseded = new Set(files.flatMap((f) => f.file.supersedes ?? []));
    for (const d of damaged) {
      if (superseded.has(d.id)) continue;
      if (!onDamaged) throw new DamagedIndexError(d.id, d.error);
      onDamaged(d.id, d.error);
    }
    const index = new ChunkIndex();
    for (const { id, file } of files) {
      if (superseded.has(id)) continue;
      for (const p of file.packs) if (!excludePacks.has(p.id)) index.addPack(p.id, p.size, p.chunks);
    }
    return index;
  }

  async writeIndexFile(file: IndexFile): Promise<string> {
    return this.putObject(ObjectType.index, Buffer.from(JSON.stringify(file)));
  }

  readPack(packId: string, offset?: number, length?: number): Promise<Buffer> {
    return this.backend.get(packObjectName(packId), offset, length);
  }

  // ---- fixed indexes and recovery points

  saveFixedIndex(index: FixedIndex): Promise<string> {
    return this.putObject(ObjectType.fixedIndex, index.encode());
  }

  async loadFixedIndex(id: string): Promise<FixedIndex> {
    return FixedIndex.decode(await this.getObject(ObjectType.fixedIndex, id), `fixed index ${id}`);
  }

  saveRecoveryPoint(point: RecoveryPoint): Promise<string> {
    return this.putObject(ObjectType.recoveryPoint, Buffer.from(JSON.stringify(point)));
  }

  async loadRecoveryPoint(id: string): Promise<RecoveryPoint> {
    return validateRecoveryPoint(await this.getJson(ObjectType.recoveryPoint, id), id);
  }

  /** All recovery points, oldest first. */
  /**
   * Every recovery point, oldest first. An unreadable one throws, unless `onUnreadable` is given:
   * then it is reported there and left out (automated work must not stop on one bad object;
   * `check` is where it gets found).
   */
  async listRecoveryPoints(onUnreadable?: (id: string, err: Error) => void): Promise<RecoveryPointEntry[]> {
    const ids = await this.listIds(ObjectType.recoveryPoint);
    const points = await mapLimit(ids, 8, async ({ id }) => {
      try {
        return { id, point: await this.loadRecoveryPoint(id) };
      } catch (err) {
        if (!onUnreadable) throw err;
        onUnreadable(id, err as Error);
        return undefined;
      }
    });
    return points.filter((p) => p !== undefined).sort((a, b) => a.point.time.localeCompare(b.point.time));
  }

  /** Finds a recovery point by its id or a unique prefix of it (like git, at least 4 characters). */
  async resolveRecoveryPoint(idOrPrefix: string): Promise<RecoveryPointEntry> {
    const want = idOrPrefix.toLowerCase();
    if (!/^[0-9a-f]{4,64}$/.test(want))
      throw new Error(
        `"${idOrPrefix}" is not a recovery point id: give at least 4 hex digits of one (\`goldsnap repo snapshots\` lists them)`,
      );
    const matches = (await this.listIds(ObjectType.recoveryPoint)).filter((o) => o.id.startsWith(want));
    if (matches.length === 0)
      throw new Error(`no recovery point ${idOrPrefix} in ${this.location} (\`goldsnap repo snapshots\` lists them)`);
    if (matches.length > 1)
      throw new Error(`"${idOrPrefix}" matches ${matches.length} recovery points: give more digits`);
    return { id: matches[0].id, point: await this.loadRecoveryPoint(matches[0].id) };
  }

  async deleteRecoveryPoint(id: string): Promise<void> {
    await this.backend.delete(objectName(ObjectType.recoveryPoint, id));
  }
}

/** Every key slot; those that cannot be parsed or fail their checksum are listed apart as damaged. */
async function readKeySlots(
  backend: Backend,
): Promise<{ slots: { id: string; slot: KeySlot }[]; damaged: { id: string; why: string }[] }> {
  const slots: { id: string; slot: KeySlot }[] = [];
  const damaged: { id: string; why: string }[] = [];
  let seen = 0;
  for await (const info of backend.list(KEYS_PREFIX)) {
    seen++;
    const id = idOfName(info.name);
    let slot: unknown;
    try {
      slot = JSON.parse((await backend.get(info.name)).toString('utf8'));
    } catch (err) {
      if (err instanceof SyntaxError) {
        damaged.push({ id, why: 'it is not valid JSON' });
        continue;
      }
      throw err;
    }
    const why = keySlotDamage(slot);
    if (why) damaged.push({ id, why });
    else slots.push({ id, slot: slot as KeySlot });
  }
  if (seen === 0) throw new Error(`${backend.location} has no key slots: the repository cannot be opened`);
  return { slots, damaged };
}
