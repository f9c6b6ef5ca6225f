import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ExtentHandles } from '../../src/emulator/extent-handles.ts';
import { EXTENT_SIZE, ExtentStore } from '../../src/emulator/extent-store.ts';
import { tempDirsRemovedAfter } from './helpers.ts';

const newDir = tempDirsRemovedAfter();

/** Descriptors this process has open. */
async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

test('keeps at most `max` files open, least recently used closed first, and reads through them', async () => {
  const dir = await newDir();
  for (let i = 0; i < 6; i++) await writeFile(join(dir, `e${i}`), Buffer.alloc(16, i));
  const handles = new ExtentHandles(4);
  const before = await openFds();
  const buf = Buffer.alloc(8);
  for (let i = 0; i < 6; i++) {
    await handles.readInto(`e${i}`, join(dir, `e${i}`), buf, 4);
    assert.deepEqual(buf, Buffer.alloc(8, i));
  }
  assert.equal(handles.size, 4);
  // e2..e5 are open: the files can go, their descriptors still read.
  await unlink(join(dir, 'e5'));
  await handles.readInto('e5', join(dir, 'e5'), buf, 0);
  assert.deepEqual(buf, Buffer.alloc(8, 5));
  await assert.rejects(handles.readInto('e0', join(dir, 'e0-gone'), buf, 0), { code: 'ENOENT' });
  assert.equal(handles.size, 3, 'a failed open is not cached (its place was made by closing e2)');
  await assert.rejects(handles.readInto('e1', join(dir, 'e1'), Buffer.alloc(32), 0), /shorter than expected/);
  await handles.closeAll();
  assert.equal(handles.size, 0);
  assert.ok((await openFds()) <= before, 'every descriptor is closed');
});

test('the store closes a deleted content’s extent files and reads again what it cached', async () => {
  const dir = await newDir();
  const store = new ExtentStore(dir, 8);
  await store.init(new Set());
  const data = Buffer.alloc(3 * EXTENT_SIZE, 7);
  const id = await store.create(undefined, [{ offset: 0, data, length: data.length }]);
  assert.deepEqual(await store.read(id, 0, data.length), data);
  assert.deepEqual(await store.read(id, 100, 1000), data.subarray(100, 1100));
  assert.equal(store.openExtents, 3);
  const copy = await store.create(id);
  await store.delete(id);
  assert.equal(store.openExtents, 3, 'the copy still uses the extents');
  await store.delete(copy);
  assert.equal(store.openExtents, 0);
  await store.close();
});
