import { randomBytes } from 'node:crypto';

/**
 * The 512-byte footer of a fixed VHD. Azure takes direct uploads to a managed disk only as a fixed
 * VHD: the raw disk (a whole number of MiB) followed by this footer, `uploadSizeBytes` = both.
 * Layout from Microsoft's "Virtual Hard Disk Image Format Specification".
 */
export const VHD_FOOTER_BYTES = 512;

export function fixedVhdFooter(diskBytes: number, now = new Date()): Buffer {
  const f = Buffer.alloc(VHD_FOOTER_BYTES);
  f.write('conectix', 0, 'ascii');
  f.writeUInt32BE(0x00000002, 8); // features: reserved bit always set
  f.writeUInt32BE(0x00010000, 12); // format version 1.0
  f.writeBigUInt64BE(0xffffffffffffffffn, 16); // data offset: none for a fixed disk
  f.writeUInt32BE(Math.max(0, Math.floor((now.getTime() - Date.UTC(2000, 0, 1)) / 1000)) >>> 0, 24);
  f.write('gsnp', 28, 'ascii'); // creator application
  f.writeUInt32BE(0x00010000, 32); // creator version
  f.write('Wi2k', 36, 'ascii'); // creator host OS, as Azure's own tools write it
  f.writeBigUInt64BE(BigInt(diskBytes), 40); // original size
  f.writeBigUInt64BE(BigInt(diskBytes), 48); // current size
  const { cylinders, heads, sectorsPerTrack } = geometry(diskBytes / 512);
  f.writeUInt16BE(cylinders, 56);
  f.writeUInt8(heads, 58);
  f.writeUInt8(sectorsPerTrack, 59);
  f.writeUInt32BE(2, 60); // disk type: fixed
  randomBytes(16).copy(f, 68); // unique id
  let sum = 0;
  for (const byte of f) sum += byte; // checksum field (64..67) is still zero here
  f.writeUInt32BE(~sum >>> 0, 64);
  return f;
}

/** CHS geometry as the VHD specification computes it (appendix: CHS calculation). */
function geometry(totalSectors: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  const sectors = Math.min(totalSectors, 65535 * 16 * 255);
  let sectorsPerTrack: number;
  let heads: number;
  let cylinderTimesHeads: number;
  if (sectors >= 65535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylinderTimesHeads = Math.floor(sectors / sectorsPerTrack);
  } else {
    sectorsPerTrack = 17;
    cylinderTimesHeads = Math.floor(sectors / sectorsPerTrack);
    heads = Math.max(4, Math.floor((cylinderTimesHeads + 1023) / 1024));
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylinderTimesHeads = Math.floor(sectors / sectorsPerTrack);
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylinderTimesHeads = Math.floor(sectors / sectorsPerTrack);
    }
  }
  return { cylinders: Math.min(65535, Math.floor(cylinderTimesHeads / heads)), heads, sectorsPerTrack };
}
