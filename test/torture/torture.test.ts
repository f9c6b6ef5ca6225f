import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runTorture, summary } from './torture.ts';

// A short seeded pass of `npm run torture`: kill -9 trials of backup, restore, forget and prune
// with prunes beside them, on each backend (the object stores through a proxy that answers 503,
// drops connections and is slow at times); nothing acknowledged may be lost.
test('seeded kill -9 trials on every backend lose no recovery point', async (t) => {
  const reports = await runTorture({
    seed: Number(process.env.TORTURE_SEED ?? 3),
    trials: 3,
    backends: ['folder', 's3rver', 'azurite'],
    faults: true,
  });
  t.diagnostic(summary(reports));
  for (const r of reports) {
    assert.deepEqual(r.problems, [], `${r.backend}: ${r.problems.join('\n')}`);
    assert.equal(r.dataLost, 0);
    assert.ok(r.pointsVerified > 0, `${r.backend}: some points were restored and compared`);
    if (r.faults) assert.ok(r.faults.requests > 0);
  }
});
