import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { chunkPositionsTouched, parseChangedRanges } from '../../src/dataplane/byte-ranges.ts';
import { FixedIndex } from '../../src/repository/fixed-index.ts';

test('a fixed index encodes and decodes, zero marker included', () => {
  const idx = new FixedIndex(5 * 1024 * 1024 + 3, 1024 * 1024);
  assert.equal(idx.count, 6);
  assert.equal(idx.lengthAt(5), 3);
  const id = randomBytes(32);
  idx.set(2, id);
  const back = FixedIndex.decode(idx.encode(), 'test');
  assert.equal(back.sizeBytes, idx.sizeBytes);
  assert.ok(back.idAt(2).equals(id));
  assert.ok(back.isZero(0) && !back.isZero(2));
  assert.deepEqual([...back.storedIds()], [id.toString('hex')]);
});

test('resizing keeps whole chunks and asks to read the ones whose length changed', () => {
  const idx = new FixedIndex(3 * 1024 * 1024 + 10, 1024 * 1024);
  for (let p = 0; p < 4; p++) idx.set(p, randomBytes(32));
  const grown = idx.resized(5 * 1024 * 1024);
  assert.deepEqual(grown.mustRead, [3, 4]);
  assert.ok(grown.index.idAt(2).equals(idx.idAt(2)));
  const shrunk = idx.resized(2 * 1024 * 1024);
  assert.deepEqual(shrunk.mustRead, []);
  assert.equal(shrunk.index.count, 2);
});

test('changed ranges map onto the chunk positions they touch', () => {
  const M = 1024 * 1024;
  assert.deepEqual(
    chunkPositionsTouched(
      [
        { offset: M - 1, length: 2 },
        { offset: 5 * M, length: M },
        { offset: 7 * M, length: 0 },
      ],
      M,
    ),
    [0, 1, 5],
  );
  assert.throws(
    () => parseChangedRanges('[{"offset": -1, "length": 5}]', 10 * M, 'r.json'),
    /range #0 .* non-negative integer/,
  );
  assert.throws(() => parseChangedRanges('{"offset": 1}', 10 * M, 'r.json'), /must be a JSON array/);
  assert.throws(() => parseChangedRanges('nope', 10 * M, 'r.json'), /r.json is not JSON/);
});
