import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readPartitionTable } from '../../src/files/partitions.ts';
import type { ByteSource } from '../../src/files/lazy-image.ts';
import { MiB, tempDir } from '../support/disk-images.ts';

const skip =
  existsSync('/usr/sbin/sfdisk') || existsSync('/sbin/sfdisk')
    ? false
    : 'sfdisk is not installed (.ci/run installs fdisk)';

function memory(bytes: Buffer): ByteSource {
  return {
    sizeBytes: bytes.length,
    read: async (offset, length) => Buffer.from(bytes.subarray(offset, offset + length)),
  };
}

async function sfdisk(path: string, sizeBytes: number, layout: string): Promise<Buffer> {
  const fh = await open(path, 'w');
  await fh.truncate(sizeBytes);
  await fh.close();
  await new Promise<void>((resolve, reject) =>
    execFile('sfdisk', ['-q', path], (err) => (err ? reject(err) : resolve())).stdin!.end(layout),
  );
  return readFile(path);
}

test('MBR: primary and logical partitions, numbered as Linux does', { skip }, async (t) => {
  const dir = await tempDir(t);
  const disk = await sfdisk(
    join(dir, 'mbr.img'),
    64 * MiB,
    'label: dos\nstart=2048, size=20480, type=83\nstart=22528, size=100000, type=5\nstart=24576, size=8192, type=7\nstart=34816, size=8192, type=83\n',
  );
  const table = await readPartitionTable(memory(disk));
  assert.equal(table.scheme, 'mbr');
  assert.deepEqual(
    table.partitions.map((p) => [p.number, p.start / 512, p.sizeBytes / 512, p.type]),
    [
      [1, 2048, 20480, '0x83'],
      [5, 24576, 8192, '0x07'],
      [6, 34816, 8192, '0x83'],
    ],
  );
});

test('GPT: entries with names; a damaged primary header falls back to the backup one', { skip }, async (t) => {
  const dir = await tempDir(t);
  const disk = await sfdisk(
    join(dir, 'gpt.img'),
    64 * MiB,
    'label: gpt\nstart=2048, size=20480, type=linux, name="root"\nstart=22528, size=8192, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n',
  );
  const expected = [
    [1, 2048, 20480, '0FC63DAF-8483-4772-8E79-3D69D8477DE4', 'root'],
    [2, 22528, 8192, 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', undefined],
  ];
  const shape = (t: Awaited<ReturnType<typeof readPartitionTable>>) =>
    t.partitions.map((p) => [p.number, p.start / 512, p.sizeBytes / 512, p.type, p.name]);
  assert.deepEqual(shape(await readPartitionTable(memory(disk))), expected);
  disk[512 + 20] ^= 0xff; // inside the primary header: its CRC no longer matches
  const fallback = await readPartitionTable(memory(disk));
  assert.equal(fallback.scheme, 'gpt');
  assert.deepEqual(shape(fallback), expected);
  disk[disk.length - 512 + 20] ^= 0xff;
  await assert.rejects(readPartitionTable(memory(disk)), /neither its primary nor its backup GPT header is valid/);
});

test('a disk with no partition table is one partition: the whole disk', async () => {
  const table = await readPartitionTable(memory(Buffer.alloc(4 * MiB)));
  assert.deepEqual(table, { scheme: 'none', partitions: [{ number: 0, start: 0, sizeBytes: 4 * MiB, type: 'none' }] });
});
