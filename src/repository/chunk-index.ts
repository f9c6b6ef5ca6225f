import type { PackEntry } from './pack.ts';

/** Where a chunk is stored. */
export interface ChunkLocation {
  pack: string;
  offset: number;
  length: number;
  rawLength: number;
  compression: number;
}

/** What an index file holds: for each pack written, the chunks in it. */
export interface IndexFile {
  packs: {
    id: string;
    size: number;
    chunks: { id: string; offset: number; length: number; rawLength: number; compression: number }[];
  }[];
  /** Index files this one replaces (written by prune when it rewrites the index). */
  supersedes?: string[];
}

/**
 * The in-memory map chunk id → location, built from all index files. Keys are hex ids: about
 * 200 bytes per chunk in V8, i.e. 200 MiB for 1 TiB of unique 1 MiB chunks.
 */
export class ChunkIndex {
  private readonly chunks = new Map<string, ChunkLocation>();
  /** Packs known to the index, with their sizes. */
  readonly packs = new Map<string, number>();

  get size(): number {
    return this.chunks.size;
  }

  has(id: string): boolean {
    return this.chunks.has(id);
  }

  get(id: string): ChunkLocation | undefined {
    return this.chunks.get(id);
  }

  entries(): IterableIterator<[string, ChunkLocation]> {
    return this.chunks.entries();
  }

  addPack(
    pack: string,
    size: number,
    entries: Iterable<{ id: string; offset: number; length: number; rawLength: number; compression: number }>,
  ): void {
    this.packs.set(pack, size);
    for (const e of entries) {
      // A chunk stored twice (two backups racing on the same new data) is fine: either copy will do.
      if (!this.chunks.has(e.id)) {
        this.chunks.set(e.id, {
          pack,
          offset: e.offset,
          length: e.length,
          rawLength: e.rawLength,
          compression: e.compression,
        });
      }
    }
  }

  addIndexFile(file: IndexFile): void {
    for (const p of file.packs) this.addPack(p.id, p.size, p.chunks);
  }
}

export function packEntriesToIndex(entries: PackEntry[]) {
  return entries.map((e) => ({
    id: e.id.toString('hex'),
    offset: e.offset,
    length: e.length,
    rawLength: e.rawLength,
    compression: e.compression,
  }));
}

export function validateIndexFile(raw: unknown, name: string): IndexFile {
  const packs = (raw as { packs?: unknown } | null)?.packs;
  if (!Array.isArray(packs)) throw new Error(`index ${name} is malformed: no pack list`);
  for (const p of packs as Array<{ id?: unknown; chunks?: unknown } | null>) {
    if (typeof p?.id !== 'string' || !Array.isArray(p.chunks))
      throw new Error(`index ${name} is malformed: bad pack entry`);
  }
  return raw as IndexFile;
}
