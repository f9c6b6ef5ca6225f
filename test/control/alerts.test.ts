import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type Delivery,
  type MailSink,
  signedWith,
  startMailSink,
  startWebhookReceiver,
  type WebhookReceiver,
} from '../support/alert-sinks.ts';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';

/**
 * Alerts end to end: a real SMTP server and a webhook receiver on loopback, a goldsnap server
 * whose run fails, whose schedule is missed and whose VM is left out of every policy.
 */

describe('alerts', () => {
  let server: ServerUnderTest;
  let mail: MailSink;
  let webhook: WebhookReceiver;
  const refusedOnce = new Set<string>();

  before(async () => {
    mail = await startMailSink();
    // The receiver refuses the first delivery of each event: the server must retry it.
    webhook = await startWebhookReceiver((req) => {
      const key = String(req.headers['x-goldsnap-delivery']);
      const status = refusedOnce.has(key) ? 200 : 500;
      refusedOnce.add(key);
      return status;
    });
    server = await ServerUnderTest.create({
      catalog: 'pglite',
      env: {
        GOLDSNAP_SMTP_URL: mail.url,
        GOLDSNAP_ALERT_FROM: 'goldsnap@test.invalid',
        GOLDSNAP_ALERT_INTERVAL_MS: '300',
        GOLDSNAP_ALERT_RETRY_MS: '200',
        GOLDSNAP_ALERT_SCHEDULE_GRACE_MS: '1000',
      },
    });
    // The scheduler ticks once at start only, so a policy's occurrences are missed; transfers are slow enough to catch.
    await server.start(['--bandwidth', '2MiB', '--scheduler-interval', '3600000']);
  });
  after(async () => {
    await server.dispose();
    await mail.close();
    await webhook.close();
  });

  const delivered = (kind: string, match: (payload: { key: string; details: Record<string, unknown> }) => boolean) =>
    webhook.deliveries.filter(
      (h) => h.status === 200 && h.headers['x-goldsnap-event'] === kind && match(JSON.parse(h.body)),
    );

  test('failed run, missed schedule and unprotected VM: each sent once, signed, retried; e-mail through SMTP', async () => {
    const hook = await server.cliJson<{ secret: string }>(['alerts', 'add-webhook', 'ops-hook', webhook.url]);
    assert.ok(hook.secret.length >= 16);
    await server.cliJson(['alerts', 'add-email', 'ops-mail', 'ops@test.invalid', '--event', 'run-failed']);
    const refused = await server.api('POST', '/api/alerts/channels', {
      name: 'bad',
      kind: 'email',
      target: 'ops@test.invalid',
      event: ['run-failed'],
    });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.field, 'event');

    // A VM no policy selects.
    const lonely = await server.createVm({
      name: 'lonely',
      resourceGroup: 'rg-alerts',
      region: 'westeurope',
      tags: {},
      disks: [{ name: 'lonely-os', sizeBytes: 8 * MiB, role: 'os', fill: 'random' }],
    });
    await server.cliJson(['vms', '--refresh']);
    const [unprotected] = await server.waitFor('the unprotected-VM webhook', async () => {
      const got = delivered('vm-unprotected', (p) => p.details.vmId === lonely.id);
      return got.length ? got : undefined;
    });
    assert.ok(signedWith(unprotected, hook.secret), 'the body is signed with the channel secret');
    assert.equal(JSON.parse(unprotected.body).subject, 'VM lonely is not protected by any policy');

    // A run that fails: its snapshot is deleted under it mid-transfer.
    const started = (await server.api('POST', '/api/runs', { vmId: lonely.id })).body as { id: string };
    const run = await server.waitFor('the run to snapshot its disk', async () => {
      const r = (await server.api('GET', `/api/runs/${started.id}`)).body as {
        step: string;
        disks: Array<{ snapshotId?: string }>;
      };
      return r.step === 'transfer' && r.disks.every((d) => d.snapshotId) ? r : undefined;
    });
    await (await server.cloud()).deleteSnapshot(run.disks[0].snapshotId!);
    await server.waitFor(
      'the run to fail',
      async () => ((await server.api('GET', `/api/runs/${started.id}`)).body.step === 'failed' ? true : undefined),
      120_000,
    );
    const sent = await server.waitFor('the failure e-mail', async () => mail.mails.find((m) => m.includes(started.id)));
    assert.match(sent, /^Subject: \[goldsnap\] Backup of lonely failed/m);
    assert.match(sent, /^To: ops@test\.invalid/m);
    assert.match(sent, /^From: goldsnap@test\.invalid/m);
    await server.waitFor('the failure webhook', async () =>
      delivered('run-failed', (p) => p.details.runId === started.id).length ? true : undefined,
    );

    // A schedule nobody fires (the scheduler is not ticking): every 5 seconds, selecting nothing.
    await server.cliJson([
      'policies',
      'create',
      'every-5s',
      '--cron',
      '*/5 * * * * *',
      '--tag',
      'selects=nothing',
      '--keep-last',
      '1',
    ]);
    await server.waitFor('the missed-schedule webhook', async () =>
      delivered('schedule-missed', (p) => String(p.details.policy) === 'every-5s').length ? true : undefined,
    );

    // Once per event, however many scans ran meanwhile; each was refused once, then retried.
    const byKey = new Map<string, Delivery[]>();
    for (const h of webhook.deliveries)
      byKey.set(String(h.headers['x-goldsnap-delivery']), [
        ...(byKey.get(String(h.headers['x-goldsnap-delivery'])) ?? []),
        h,
      ]);
    for (const [key, list] of byKey)
      assert.deepEqual(list.map((h) => h.status).slice(0, 2), [500, 200], `${key}: refused once, then delivered`);
    for (const [key, list] of byKey)
      assert.equal(list.filter((h) => h.status === 200).length, 1, `${key} delivered once`);
    assert.equal(mail.mails.filter((m) => m.includes(started.id)).length, 1, 'one e-mail for the failed run');
    assert.ok(!mail.mails.some((m) => /not protected/.test(m)), 'the e-mail channel gets only the kinds it asked for');

    const events = await server.cliJson<
      Array<{ key: string; kind: string; deliveries: Array<{ channelName: string; state: string; attempts: number }> }>
    >(['alerts', 'events']);
    const failedEvent = events.find((e) => e.key === `run-failed:${started.id}`);
    assert.deepEqual(failedEvent?.deliveries.map((d) => `${d.channelName}:${d.state}`).sort(), [
      'ops-hook:sent',
      'ops-mail:sent',
    ]);
    assert.equal(failedEvent.deliveries.find((d) => d.channelName === 'ops-hook')?.attempts, 2);

    const text = await server.cli(['alerts', 'test', 'ops-mail']);
    assert.equal(text.code, 0, text.stderr);
    await server.waitFor('the test e-mail', async () =>
      mail.mails.some((m) => /Test alert to ops-mail/.test(m)) ? true : undefined,
    );
  });
});
