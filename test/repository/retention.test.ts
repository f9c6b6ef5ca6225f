import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyRetention } from '../../src/repository/retention.ts';

const hours = (n: number) => n * 3_600_000;
const start = Date.parse('2026-01-01T00:30:00Z');
/** One point every 6 hours for 60 days. */
const points = Array.from({ length: 240 }, (_, i) => new Date(start + hours(6 * i)));
const kept = (policy: any, tz?: string) =>
  applyRetention(points, (p) => p, policy, tz)
    .filter((d) => d.keep)
    .map((d) => d.item.toISOString());

test('keep-last keeps the newest n', () => {
  assert.deepEqual(kept({ last: 2 }), [points[239].toISOString(), points[238].toISOString()]);
});

test('daily keeps the newest point of each of the last n days', () => {
  const days = kept({ daily: 3 });
  assert.equal(days.length, 3);
  assert.deepEqual(
    days.map((d) => d.slice(0, 10)),
    ['2026-03-01', '2026-02-28', '2026-02-27'],
  );
  assert.ok(
    days.every((d) => d.slice(11, 13) === '18'),
    'the newest of each day is the 18:30 one',
  );
});

test('weekly uses ISO weeks, monthly calendar months; rules combine', () => {
  const decisions = applyRetention(points, (p) => p, { daily: 2, weekly: 2, monthly: 3 });
  const keep = decisions.filter((d) => d.keep);
  assert.deepEqual(
    keep.map((d) => d.item.toISOString().slice(0, 10)),
    ['2026-03-01', '2026-02-28', '2026-02-22', '2026-01-31'],
  );
  assert.deepEqual(keep[0].reasons, ['daily', 'weekly', 'monthly']);
});

test('days are counted in the policy time zone', () => {
  // 18:30 UTC on 1 March is already 2 March in Tokyo, so in Tokyo the newest two days are 2 and 1 March.
  assert.deepEqual(
    kept({ daily: 2 }, 'Asia/Tokyo').map((d) => d.slice(0, 13)),
    ['2026-03-01T18', '2026-03-01T12'],
  );
});

test('a policy that keeps nothing is refused', () => {
  assert.throws(() => applyRetention(points, (p) => p, {}), /keeps nothing/);
  assert.throws(() => applyRetention(points, (p) => p, { daily: -1 }), /keep-daily must be a whole number/);
});
