import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PolicyStore, type PolicyInput } from '../../src/control/catalog/policies.ts';
import type { JobPayloads } from '../../src/control/jobs.ts';
import { JobQueue } from '../../src/control/queue/job-queue.ts';
import { Scheduler, dueOccurrence } from '../../src/control/scheduler/scheduler.ts';
import { forEachBackend, sleep } from './backends.ts';

const input = (over: Partial<PolicyInput> = {}): PolicyInput => ({
  name: 'nightly',
  cron: '0 2 * * *',
  timeZone: 'UTC',
  selection: { tags: { backup: 'yes' } },
  retention: { daily: 7 },
  ...over,
});

test('dueOccurrence: latest in (since, now], with the count of missed ones', () => {
  const p = { cron: '0 * * * *', timeZone: 'UTC' };
  assert.equal(dueOccurrence(p, new Date('2025-01-01T10:00:00Z'), new Date('2025-01-01T10:59:59Z')), undefined);
  assert.deepEqual(dueOccurrence(p, new Date('2025-01-01T10:00:00Z'), new Date('2025-01-01T11:00:00Z')), {
    latest: new Date('2025-01-01T11:00:00Z'),
    count: 1,
  });
  assert.deepEqual(dueOccurrence(p, new Date('2025-01-01T10:00:00Z'), new Date('2025-01-01T13:30:00Z')), {
    latest: new Date('2025-01-01T13:00:00Z'),
    count: 3,
  });
  assert.deepEqual(
    Scheduler.nextRuns({ cron: '0 9 * * *', timeZone: 'Europe/Paris' }, 3, new Date('2025-03-29T00:00:00Z')),
    ['2025-03-29T08:00:00.000Z', '2025-03-30T07:00:00.000Z', '2025-03-31T07:00:00.000Z'],
  );
});

forEachBackend('scheduler', (b) => {
  /** Creates a policy as if made at `createdAt`. */
  async function policyAt(createdAt: string, over: Partial<PolicyInput> = {}) {
    const p = await new PolicyStore(b.db).create(input(over));
    await b.db.query('UPDATE policies SET created_at = $2, updated_at = $2 WHERE id = $1', [p.id, createdAt]);
    return p;
  }
  const fires = async () =>
    (await b.db.query<{ scheduled_for: Date }>('SELECT scheduled_for FROM schedule_fires ORDER BY scheduled_for')).map(
      (r) => new Date(r.scheduled_for).toISOString(),
    );

  test('fires at the local time of the policy, across a DST change', async () => {
    // 09:00 in Paris is 08:00Z before 30 March 2025 (CET) and 07:00Z after (CEST).
    const p = await policyAt('2025-03-28T12:00:00Z', { cron: '0 9 * * *', timeZone: 'Europe/Paris' });
    const s = new Scheduler({ db: b.db });
    assert.deepEqual(await s.tick(new Date('2025-03-29T07:59:59Z')), []);
    const [f1] = await s.tick(new Date('2025-03-29T08:00:00Z'));
    assert.equal(f1?.scheduledFor, '2025-03-29T08:00:00.000Z');
    assert.equal(f1?.missed, 1);
    assert.deepEqual(await s.tick(new Date('2025-03-29T08:00:30Z')), [], 'once per occurrence');
    assert.deepEqual(await s.tick(new Date('2025-03-30T06:59:00Z')), []);
    const [f2] = await s.tick(new Date('2025-03-30T07:00:10Z'));
    assert.equal(f2?.scheduledFor, '2025-03-30T07:00:00.000Z');
    assert.deepEqual(await fires(), ['2025-03-29T08:00:00.000Z', '2025-03-30T07:00:00.000Z']);
    const jobs = await new JobQueue(b.db).list({ queue: 'orchestrator' });
    assert.deepEqual(jobs.map((j) => [j.kind, j.payload, j.dedupeKey]).reverse(), [
      [
        'policy-fire',
        { policyId: p.id, scheduledFor: '2025-03-29T08:00:00.000Z' },
        `fire:${p.id}:2025-03-29T08:00:00.000Z`,
      ],
      [
        'policy-fire',
        { policyId: p.id, scheduledFor: '2025-03-30T07:00:00.000Z' },
        `fire:${p.id}:2025-03-30T07:00:00.000Z`,
      ],
    ]);
  });

  test('after a long downtime, fires once for the latest missed occurrence', async () => {
    await policyAt('2025-01-01T00:30:00Z', { cron: '*/15 * * * *' });
    const s = new Scheduler({ db: b.db });
    const [f] = await s.tick(new Date('2025-01-08T10:07:00Z'));
    assert.equal(f?.scheduledFor, '2025-01-08T10:00:00.000Z');
    assert.ok(f!.missed > 600);
    assert.deepEqual(await s.tick(new Date('2025-01-08T10:14:59Z')), []);
    assert.equal((await s.tick(new Date('2025-01-08T10:15:00Z')))[0]?.scheduledFor, '2025-01-08T10:15:00.000Z');
    assert.equal((await fires()).length, 2);
    assert.equal((await new JobQueue(b.db).list()).length, 2);
  });

  test('two schedulers ticking at once fire once', async () => {
    const policies = await Promise.all(
      ['a', 'b', 'c'].map((n) => policyAt('2025-01-01T00:00:00Z', { name: n, cron: '0 * * * *' })),
    );
    const s1 = new Scheduler({ db: b.db });
    const s2 = new Scheduler({ db: await b.openAnother() });
    for (const hour of ['01', '02', '03']) {
      const now = new Date(`2025-01-01T${hour}:00:00Z`);
      const [x, y] = await Promise.all([s1.tick(now), s2.tick(now), s1.tick(now), s2.tick(now)]);
      assert.ok(x && y);
    }
    assert.equal((await fires()).length, 9);
    const jobs = await new JobQueue<JobPayloads>(b.db).list({ queue: 'orchestrator' });
    assert.equal(jobs.length, 9);
    for (const p of policies)
      assert.equal(jobs.filter((j) => j.kind === 'policy-fire' && j.payload.policyId === p.id).length, 3);
  });

  test('a disabled policy does not fire; re-enabling does not catch up', async () => {
    const p = await policyAt('2025-01-01T00:00:00Z', { cron: '0 * * * *', enabled: false });
    const s = new Scheduler({ db: b.db });
    assert.deepEqual(await s.tick(new Date('2025-01-01T05:00:00Z')), []);
    await new PolicyStore(b.db).update(p.id, { enabled: true });
    await b.db.query(`UPDATE policies SET updated_at = '2025-01-01T05:30:00Z' WHERE id = $1`, [p.id]);
    assert.deepEqual(await s.tick(new Date('2025-01-01T05:45:00Z')), []);
    assert.equal((await s.tick(new Date('2025-01-01T06:00:00Z')))[0]?.scheduledFor, '2025-01-01T06:00:00.000Z');
  });

  test('start/stop ticks in the background', async () => {
    // Created just now with a per-second cron: the background ticks fire within a second or so.
    await new PolicyStore(b.db).create(input({ cron: '* * * * * *' }));
    const lines: string[] = [];
    const s = new Scheduler({ db: b.db, log: (l) => lines.push(l) });
    let ticks = 0;
    const tick = s.tick.bind(s);
    s.tick = (now?: Date) => {
      ticks++;
      return tick(now);
    };
    s.start(50);
    const deadline = Date.now() + 5_000;
    while (!(await fires()).length && Date.now() < deadline) await sleep(50);
    await s.stop();
    assert.ok((await fires()).length >= 1);
    assert.ok(
      lines.some((l) => /fired/.test(l)),
      lines.join('\n'),
    );
    const n = ticks;
    await sleep(200);
    assert.equal(ticks, n, 'no tick after stop');
  });
});
