/**
 * Names and numbers of the on-disk format, version 2 (docs/repository-format.md). Anything here
 * that changes how existing objects are read needs a new FORMAT_VERSION.
 *
 * Version 2 authenticates `config` (a MAC under the master key); everything else is as in
 * version 1, which this version still reads (`goldsnap repo migrate` upgrades it).
 */
export const FORMAT_NAME = 'goldsnap-repository';
export const FORMAT_VERSION = 2;
/** The oldest version this one reads. */
export const OLDEST_READABLE_VERSION = 1;

export const MiB = 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 1 * MiB;
/** As restic's default: large enough that object stores' per-request cost is negligible. */
export const DEFAULT_PACK_SIZE = 16 * MiB;

/** Folder of each object type; also the associated data that binds a sealed object to its type. */
export const ObjectType = {
  index: 'index',
  fixedIndex: 'fidx',
  recoveryPoint: 'snapshots',
  session: 'sessions',
  prunePlan: 'prune',
} as const;
export type ObjectType = (typeof ObjectType)[keyof typeof ObjectType];

export const CONFIG_NAME = 'config';
export const KEYS_PREFIX = 'keys/';
export const DATA_PREFIX = 'data/';

export function packObjectName(packId: string): string {
  return `${DATA_PREFIX}${packId.slice(0, 2)}/${packId}`;
}

export function objectName(type: ObjectType, id: string): string {
  return `${type}/${id}`;
}

/** The id part of a listed object name: `index/ab12…` → `ab12…`. */
export function idOfName(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

/** Parses `1048576`, `1M`, `1MiB`, `32m`, `4k`, `2G` into bytes. */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new Error(`${what}: "${text}" is not a size; write it like 1048576, 1MiB or 32M`);
  const power = ' kmgt'.indexOf((m[2] || ' ').toLowerCase());
  return Number(m[1]) * 1024 ** power;
}
