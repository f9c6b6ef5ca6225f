import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SqlRunStore } from '../../src/control/catalog/run-store.ts';
import type { JobPayloads } from '../../src/control/jobs.ts';
import { JobQueue } from '../../src/control/queue/job-queue.ts';
import { forEachBackend, sleep } from './backends.ts';

forEachBackend('job queue', (b) => {
  test('enqueue is idempotent on the dedupe key', async () => {
    const q = new JobQueue(b.db);
    const a = await q.enqueue({
      queue: 'transfer:westeurope',
      kind: 'transfer',
      payload: { runId: 'r1', diskId: 'd1' },
      dedupeKey: 'k1',
    });
    const c = await q.enqueue({
      queue: 'transfer:westeurope',
      kind: 'transfer',
      payload: { runId: 'r1', diskId: 'other' },
      dedupeKey: 'k1',
    });
    assert.equal(c.id, a.id);
    assert.deepEqual(c.payload, { runId: 'r1', diskId: 'd1' });
    const [x, y] = await Promise.all([
      q.enqueue({ queue: 'q', kind: 'k', payload: {}, dedupeKey: 'k2' }),
      q.enqueue({ queue: 'q', kind: 'k', payload: {}, dedupeKey: 'k2' }),
    ]);
    assert.equal(x.id, y.id);
    // Without a key, every enqueue is a job.
    await q.enqueue({ queue: 'q', kind: 'k', payload: {} });
    await q.enqueue({ queue: 'q', kind: 'k', payload: {} });
    assert.equal((await q.list()).length, 4);
    assert.equal(a.state, 'queued');
    assert.equal(a.attempts, 0);
    assert.equal(a.maxAttempts, 5);
    await assert.rejects(q.enqueue({ queue: 'q', kind: 'k', payload: {}, maxAttempts: 0 }), /maxAttempts/);
  });

  test('purge removes old finished jobs, but not those of unfinished runs', async () => {
    const q = new JobQueue<JobPayloads>(b.db);
    const store = new SqlRunStore(b.db, q);
    const old = await q.enqueue({
      queue: 'q',
      kind: 'transfer',
      payload: { runId: 'finished-run', diskId: 'd' },
      dedupeKey: 'old',
    });
    const kept = await q.enqueue({
      queue: 'q',
      kind: 'transfer',
      payload: { runId: 'live-run', diskId: 'd' },
      dedupeKey: 'live',
    });
    const fresh = await q.enqueue({ queue: 'q', kind: 'policy-fire', payload: { policyId: 'p', scheduledFor: 'now' } });
    for (const job of [old, kept, fresh]) {
      await q.claim('q', 'w', 10_000);
      await q.complete(job.id, 'w');
    }
    await b.db.query(
      `INSERT INTO runs (id, vm_id, step, doc, created_at, updated_at) VALUES ('live-run', 'vm', 'transfer', '{}', now(), now())`,
    );
    await b.db.query(`UPDATE jobs SET updated_at = now() - interval '40 days' WHERE id IN ($1, $2)`, [old.id, kept.id]);
    assert.equal(await store.purgeJobs(new Date(Date.now() - 30 * 86_400_000)), 1);
    assert.equal(await q.get(old.id), undefined);
    assert.ok(await q.get(kept.id), 'a job of an unfinished run stays');
    assert.ok(await q.get(fresh.id), 'a recent job stays');
  });

  test('claim: in order, only due jobs, only its queue; complete', async () => {
    const q = new JobQueue(b.db);
    const j1 = await q.enqueue({ queue: 'a', kind: 'k', payload: { n: 1 } });
    const j2 = await q.enqueue({ queue: 'a', kind: 'k', payload: { n: 2 } });
    await q.enqueue({ queue: 'a', kind: 'k', payload: { n: 3 }, runAfter: new Date(Date.now() + 60_000) });
    await q.enqueue({ queue: 'b', kind: 'k', payload: { n: 4 } });
    const c1 = await q.claim('a', 'w1', 10_000);
    assert.equal(c1?.id, j1.id);
    assert.equal(c1?.state, 'running');
    assert.equal(c1?.lockedBy, 'w1');
    assert.equal(c1?.attempts, 1);
    assert.ok(c1?.leaseUntil && Date.parse(c1.leaseUntil) > Date.now() + 5_000);
    assert.equal((await q.claim('a', 'w1', 10_000))?.id, j2.id);
    assert.equal(await q.claim('a', 'w1', 10_000), undefined);
    assert.equal(await q.complete(j1.id, 'w2', { ok: 1 }), false, 'another worker cannot complete it');
    assert.equal(await q.complete(j1.id, 'w1', { ok: 1 }), true);
    const done = await q.get(j1.id);
    assert.equal(done?.state, 'done');
    assert.deepEqual(done?.result, { ok: 1 });
    assert.equal(await q.complete(j1.id, 'w1'), false, 'completing twice');
    assert.deepEqual(await q.depth(), {
      a: { queued: 1, ready: 0, running: 1 },
      b: { queued: 1, ready: 1, running: 0 },
    });
  });

  test('two concurrent claimers never get the same job', async () => {
    const q1 = new JobQueue(b.db);
    const q2 = new JobQueue(await b.openAnother());
    const n = 30;
    for (let i = 0; i < n; i++) await q1.enqueue({ queue: 'transfer:x', kind: 'transfer', payload: { i } });
    const drain = async (q: JobQueue, worker: string) => {
      const got: number[] = [];
      for (;;) {
        const job = await q.claim('transfer:x', worker, 60_000);
        if (!job) return got;
        got.push(job.id);
      }
    };
    const [a, c, d, e] = await Promise.all([drain(q1, 'w1'), drain(q2, 'w2'), drain(q1, 'w3'), drain(q2, 'w4')]);
    const all = [...a, ...c, ...d, ...e];
    assert.equal(all.length, n);
    assert.equal(new Set(all).size, n);
    const rows = await b.db.query<{ locked_by: string; attempts: number }>(`SELECT locked_by, attempts FROM jobs`);
    assert.ok(rows.every((r) => r.attempts === 1));
    if (b.kind === 'postgres')
      assert.ok(a.length + d.length > 0 && c.length + e.length > 0, `both connections got work`);
  });

  test('an expired lease is claimed again; the old worker has lost it', async () => {
    const q = new JobQueue(b.db);
    const job = await q.enqueue({ queue: 'transfer:r', kind: 'transfer', payload: { runId: 'r1' } });
    const first = await q.claim('transfer:r', 'proxy-1', 60_000);
    assert.equal(first?.id, job.id);
    assert.equal(await q.heartbeat(job.id, 'proxy-1', 60_000, { bytesDone: 10 }), true);
    assert.deepEqual((await q.get(job.id))?.progress, { bytesDone: 10 });
    assert.equal(await q.claim('transfer:r', 'proxy-2', 10_000), undefined, 'the lease still holds');
    // proxy-1 was killed: no heartbeat comes, and its lease runs out (moved to the past here, so
    // that the test does not depend on how long a loaded machine takes between two statements).
    await b.db.query(`UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1`, [job.id]);
    // Its job is picked up by proxy-2.
    const second = await q.claim('transfer:r', 'proxy-2', 10_000);
    assert.equal(second?.id, job.id);
    assert.equal(second?.lockedBy, 'proxy-2');
    assert.equal(second?.attempts, 2);
    assert.deepEqual(second?.progress, { bytesDone: 10 }, 'progress survives for the next worker');
    assert.equal(await q.heartbeat(job.id, 'proxy-1', 10_000), false, 'heartbeat after the lease was lost');
    assert.equal(await q.complete(job.id, 'proxy-1'), false);
    assert.equal(await q.fail(job.id, 'proxy-1', 'late'), 'lost');
    assert.equal(await q.heartbeat(job.id, 'proxy-2', 10_000, { bytesDone: 20 }), true);
    assert.equal(await q.complete(job.id, 'proxy-2'), true);
    assert.equal((await q.get(job.id))?.state, 'done');
  });

  test('an expired lease on the last attempt fails the job', async () => {
    const q = new JobQueue(b.db);
    const job = await q.enqueue({ queue: 'x', kind: 'k', payload: {}, maxAttempts: 1 });
    await q.claim('x', 'w1', 20);
    await sleep(60);
    assert.equal(await q.claim('x', 'w2', 1000), undefined);
    const failed = await q.get(job.id);
    assert.equal(failed?.state, 'failed');
    assert.match(failed?.lastError ?? '', /lease of w1 expired/);
  });

  test('fail: retried after the delay, then failed after max attempts', async () => {
    const q = new JobQueue(b.db);
    const job = await q.enqueue({ queue: 'r', kind: 'k', payload: {}, maxAttempts: 3 });
    await q.claim('r', 'w', 10_000);
    assert.equal(await q.fail(job.id, 'w', new Error('disk busy'), { retryAfterMs: 60_000 }), 'queued');
    let j = await q.get(job.id);
    assert.equal(j?.state, 'queued');
    assert.equal(j?.lastError, 'disk busy');
    assert.ok(Date.parse(j!.runAfter) > Date.now() + 50_000);
    assert.equal(await q.claim('r', 'w', 10_000), undefined, 'not before retryAfter');
    await b.db.query(`UPDATE jobs SET run_after = now() WHERE id = $1`, [job.id]);
    await q.claim('r', 'w', 10_000);
    assert.equal(await q.fail(job.id, 'w', 'again'), 'queued');
    assert.equal((await q.claim('r', 'w', 10_000))?.attempts, 3);
    assert.equal(await q.fail(job.id, 'w', 'third time'), 'failed');
    j = await q.get(job.id);
    assert.equal(j?.state, 'failed');
    assert.equal(j?.lastError, 'third time');
    assert.equal(await q.claim('r', 'w', 10_000), undefined);
    // A permanent failure does not retry.
    const p = await q.enqueue({ queue: 'r', kind: 'k', payload: {} });
    await q.claim('r', 'w', 10_000);
    assert.equal(await q.fail(p.id, 'w', 'bad input', { permanent: true }), 'failed');
  });

  test('depth per queue prefix, listByPayload, claimNext wakes on enqueue', async () => {
    const q = new JobQueue<{
      transfer: { runId: string; diskId: string };
      'policy-fire': object;
      k: { hello: number };
    }>(b.db);
    await q.enqueue({ queue: 'transfer:westeurope', kind: 'transfer', payload: { runId: 'r1', diskId: 'a' } });
    await q.enqueue({ queue: 'transfer:westeurope', kind: 'transfer', payload: { runId: 'r1', diskId: 'b' } });
    await q.enqueue({ queue: 'transfer:eastus', kind: 'transfer', payload: { runId: 'r2', diskId: 'c' } });
    await q.enqueue({ queue: 'orchestrator', kind: 'policy-fire', payload: {} });
    await q.claim('transfer:eastus', 'w', 10_000);
    assert.deepEqual(await q.depth('transfer:'), {
      'transfer:eastus': { queued: 0, ready: 0, running: 1 },
      'transfer:westeurope': { queued: 2, ready: 2, running: 0 },
    });
    assert.deepEqual(
      (await q.listByPayload('runId', 'r1')).map((j) => (j.kind === 'transfer' ? j.payload.diskId : j.kind)),
      ['a', 'b'],
    );

    // The poll is hours away: only the database's notification can wake the waiter.
    const waiting = q.claimNext('later', 'w', 10_000, { pollMs: 3_600_000 });
    await q.enqueue({ queue: 'later', kind: 'k', payload: { hello: 1 } });
    const got = await waiting;
    assert.deepEqual(got?.payload, { hello: 1 });
    const ac = new AbortController();
    const never = q.claimNext('empty', 'w', 10_000, { signal: ac.signal, pollMs: 20 });
    await sleep(60);
    ac.abort();
    assert.equal(await never, undefined);
  });

  test('a job enqueued in a transaction, through another connection, wakes a waiter (NOTIFY at commit)', async () => {
    // PostgreSQL: another pool, as another server process would have; PGlite: the same instance.
    const other = await b.openAnother();
    const waiter = new JobQueue<{ k: { n: number } }>(b.db);
    const writer = new JobQueue<{ k: { n: number } }>(other);
    const changes: string[] = [];
    const stop = await waiter.onChange((c) => c && changes.push(`${c.queue}:${c.state}`));
    // No poll for an hour: only the notification can wake it.
    const waiting = waiter.claimNext('woken', 'w', 10_000, { pollMs: 3_600_000 });
    await other.transaction((tx) => writer.enqueue({ queue: 'woken', kind: 'k', payload: { n: 7 } }, tx));
    const job = await waiting;
    assert.deepEqual(job?.payload, { n: 7 });
    assert.equal(await waiter.complete(job!.id, 'w'), true);
    // Claim and completion were notified too (the orchestrator wakes on them); wait for the last one.
    await new Promise<void>((resolve) => {
      const check = () => (changes.includes('woken:done') ? resolve() : setImmediate(check));
      check();
    });
    assert.deepEqual(changes, ['woken:queued', 'woken:running', 'woken:done']);
    await stop();
  });
});
