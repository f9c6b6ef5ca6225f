import { crc32 } from 'node:zlib';
import type { ByteSource } from './lazy-image.ts';

const SECTOR = 512;

/** One partition of a disk, in bytes. Number 0 stands for a disk with no partition table. */
export interface Partition {
  number: number;
  start: number;
  sizeBytes: number;
  /** GPT type GUID or MBR type byte (hex), as the table says. */
  type: string;
  name?: string;
}

export interface PartitionTable {
  scheme: 'gpt' | 'mbr' | 'none';
  partitions: Partition[];
}

/**
 * Reads a disk's partition table, GPT (UEFI spec §5.3, CRC-checked, backup header if the primary
 * is damaged) or MBR (primary entries and the extended-partition chain of logical ones). A disk
 * with neither is one partition, number 0, the whole disk.
 */
export async function readPartitionTable(disk: ByteSource): Promise<PartitionTable> {
  const mbr = await disk.read(0, Math.min(SECTOR, disk.sizeBytes));
  if (mbr.length < SECTOR || mbr.readUInt16LE(510) !== 0xaa55) return wholeDisk(disk);
  const entries = mbrEntries(mbr);
  if (entries.some((e) => e.type === 0xee)) {
    const gpt = (await readGpt(disk, 1)) ?? (await readGpt(disk, disk.sizeBytes / SECTOR - 1));
    if (!gpt)
      throw new Error(
        'the disk has a protective MBR but neither its primary nor its backup GPT header is valid: the partition table is damaged',
      );
    return { scheme: 'gpt', partitions: gpt };
  }
  const partitions: Partition[] = [];
  for (const [i, e] of entries.entries()) {
    if (e.type === 0 || e.sectors === 0) continue;
    if (e.type === 0x05 || e.type === 0x0f || e.type === 0x85) {
      partitions.push(...(await logicalPartitions(disk, e.lba)));
      continue;
    }
    partitions.push({ number: i + 1, start: e.lba * SECTOR, sizeBytes: e.sectors * SECTOR, type: hexByte(e.type) });
  }
  // A boot sector of a file system (NTFS, FAT) also ends in 55AA: with no sane entry, it is one.
  if (partitions.length === 0 || partitions.some((p) => p.start + p.sizeBytes > disk.sizeBytes || p.start === 0))
    return wholeDisk(disk);
  return { scheme: 'mbr', partitions: partitions.sort((a, b) => a.number - b.number) };
}

function wholeDisk(disk: ByteSource): PartitionTable {
  return { scheme: 'none', partitions: [{ number: 0, start: 0, sizeBytes: disk.sizeBytes, type: 'none' }] };
}

function mbrEntries(sector: Buffer) {
  return [0, 1, 2, 3].map((i) => {
    const at = 446 + i * 16;
    return { type: sector[at + 4], lba: sector.readUInt32LE(at + 8), sectors: sector.readUInt32LE(at + 12) };
  });
}

/** Logical partitions: a chain of EBRs, each relative to the extended partition's start. */
async function logicalPartitions(disk: ByteSource, extendedLba: number): Promise<Partition[]> {
  const out: Partition[] = [];
  let ebrLba = extendedLba;
  for (let number = 5; number < 5 + 128; number++) {
    if ((ebrLba + 1) * SECTOR > disk.sizeBytes)
      throw new Error(
        `the extended partition's chain points beyond the disk (sector ${ebrLba}): the partition table is damaged`,
      );
    const ebr = await disk.read(ebrLba * SECTOR, SECTOR);
    if (ebr.readUInt16LE(510) !== 0xaa55) break;
    const [own, next] = mbrEntries(ebr);
    if (own.type !== 0 && own.sectors !== 0)
      out.push({
        number,
        start: (ebrLba + own.lba) * SECTOR,
        sizeBytes: own.sectors * SECTOR,
        type: hexByte(own.type),
      });
    if (next.type === 0 || next.lba === 0) break;
    ebrLba = extendedLba + next.lba;
  }
  return out;
}

async function readGpt(disk: ByteSource, headerLba: number): Promise<Partition[] | undefined> {
  if (!Number.isInteger(headerLba) || (headerLba + 1) * SECTOR > disk.sizeBytes) return undefined;
  const header = await disk.read(headerLba * SECTOR, SECTOR);
  if (header.toString('latin1', 0, 8) !== 'EFI PART') return undefined;
  const headerSize = header.readUInt32LE(12);
  if (headerSize < 92 || headerSize > SECTOR) return undefined;
  const check = Buffer.from(header.subarray(0, headerSize));
  check.writeUInt32LE(0, 16);
  if (crc32(check) !== header.readUInt32LE(16)) return undefined;
  const entriesLba = Number(header.readBigUInt64LE(72));
  const count = header.readUInt32LE(80);
  const entrySize = header.readUInt32LE(84);
  if (entrySize < 128 || count > 4096 || entriesLba * SECTOR + count * entrySize > disk.sizeBytes) return undefined;
  const table = await disk.read(entriesLba * SECTOR, count * entrySize);
  if (crc32(table) !== header.readUInt32LE(88)) return undefined;
  const out: Partition[] = [];
  for (let i = 0; i < count; i++) {
    const e = table.subarray(i * entrySize, (i + 1) * entrySize);
    const type = guid(e.subarray(0, 16));
    if (type === '00000000-0000-0000-0000-000000000000') continue;
    const first = Number(e.readBigUInt64LE(32));
    const last = Number(e.readBigUInt64LE(40));
    if (last < first || (last + 1) * SECTOR > disk.sizeBytes) continue;
    const name = e.subarray(56, 128).toString('utf16le').replace(/\0.*$/s, '');
    out.push({
      number: i + 1,
      start: first * SECTOR,
      sizeBytes: (last - first + 1) * SECTOR,
      type,
      ...(name ? { name } : {}),
    });
  }
  return out;
}

/** A GUID as text: the first three fields are little-endian on disk. */
function guid(b: Buffer): string {
  const hex = (from: number, to: number, reverse: boolean) => {
    const part = Buffer.from(b.subarray(from, to));
    return (reverse ? part.reverse() : part).toString('hex');
  };
  return `${hex(0, 4, true)}-${hex(4, 6, true)}-${hex(6, 8, true)}-${hex(8, 10, false)}-${hex(10, 16, false)}`.toUpperCase();
}

function hexByte(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}

export type FileSystemType = 'ext4' | 'xfs' | 'ntfs' | 'vfat' | 'swap' | 'unknown';

/** Which file system a partition holds, from its superblock's magic. */
export async function detectFileSystem(part: ByteSource): Promise<FileSystemType> {
  if (part.sizeBytes < 4096) return 'unknown';
  const head = await part.read(0, 4096);
  if (head.readUInt16LE(1024 + 56) === 0xef53) return 'ext4';
  if (head.toString('latin1', 0, 4) === 'XFSB') return 'xfs';
  if (head.toString('latin1', 3, 11) === 'NTFS    ') return 'ntfs';
  if (head.toString('latin1', 82, 87) === 'FAT32' || head.toString('latin1', 54, 57) === 'FAT') return 'vfat';
  if (head.toString('latin1', 4086, 4096) === 'SWAPSPACE2') return 'swap';
  return 'unknown';
}
