import assert from 'node:assert/strict';
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import {
  type MailSink,
  signedWith,
  startMailSink,
  startWebhookReceiver,
  type WebhookReceiver,
} from '../support/alert-sinks.ts';
import { makeDiskImage, MiB, tempDir } from '../support/disk-images.ts';
import { goldsnapJson } from '../support/goldsnap-cli.ts';
import { ServerUnderTest } from '../support/goldsnap-server.ts';

/**
 * Scheduled repository checks, end to end: a server on PostgreSQL checks its repository every two
 * seconds (metadata); a pack is damaged on purpose (one byte flipped in its data, which only
 * reading the data finds); a read-data check finds it, is recorded as failed, and raises one
 * `check-failed` alert, delivered once to a webhook (signed with a secret the catalog holds only
 * sealed) and once by e-mail through a real SMTP server on loopback.
 */

interface Check {
  id: string;
  state: 'running' | 'passed' | 'failed';
  readData: string;
  scheduledFor: string | null;
  startedAt: string;
  errors: string[];
  recoveryPoints: number;
}

let server: ServerUnderTest;
let mail: MailSink;
let webhook: WebhookReceiver;

before(async () => {
  mail = await startMailSink();
  webhook = await startWebhookReceiver();
  server = await ServerUnderTest.create({
    catalog: 'postgres',
    env: {
      GOLDSNAP_SMTP_URL: mail.url,
      GOLDSNAP_ALERT_FROM: 'goldsnap@test.invalid',
      GOLDSNAP_ALERT_INTERVAL_MS: '300',
      GOLDSNAP_CHECK_SCHEDULE: '*/2 * * * * *',
    },
  });
  await server.start();
});

after(async () => {
  await server?.dispose();
  await mail?.close();
  await webhook?.close();
});

async function checks(query = ''): Promise<Check[]> {
  const res = await server.api('GET', `/api/checks${query}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body as Check[];
}

/** The first check (newest first in the list) for which `match` holds, once it has finished. */
function finishedCheck(what: string, match: (c: Check) => boolean): Promise<Check> {
  return server.waitFor(what, async () => (await checks('?limit=1000')).find((c) => c.state !== 'running' && match(c)));
}

async function flipByte(path: string, at: number): Promise<void> {
  const fh = await open(path, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, at);
  b[0] ^= 0xff;
  await fh.write(b, 0, 1, at);
  await fh.close();
}

test('scheduled checks are recorded; a damaged pack fails a read-data check and alerts once per check, by webhook and e-mail', async (t) => {
  const hook = await server.cliJson<{ secret: string; channel: { id: string } }>([
    'alerts',
    'add-webhook',
    'ops-hook',
    webhook.url,
    '--event',
    'check-failed',
  ]);
  await server.cliJson(['alerts', 'add-email', 'ops-mail', 'ops@test.invalid', '--event', 'check-failed']);

  // The webhook secret is in the catalog only sealed.
  const db = new pg.Client({ connectionString: server.env.DATABASE_URL });
  await db.connect();
  t.after(() => db.end());
  const { rows } = await db.query('SELECT secret FROM alert_channels WHERE id = $1', [hook.channel.id]);
  assert.equal(rows.length, 1);
  assert.ok(!String(rows[0].secret).includes(hook.secret), 'the catalog row does not hold the secret');
  assert.match(String(rows[0].secret), /^gsbox1:/);

  // Some data in the server's repository, written by the CLI beside the running server.
  const dir = await tempDir(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 6 * MiB, 7);
  const repo = join(server.dataDir, 'repository');
  const passphrase = (await readFile(join(server.dataDir, 'secrets', 'repository-passphrase'), 'utf8')).trim();
  await goldsnapJson(['repo', 'backup-image', image, '--repo', repo], { GOLDSNAP_PASSWORD: passphrase });
  const written = new Date().toISOString();

  const healthy = await finishedCheck(
    'a scheduled check of the backed-up repository',
    (c) => c.scheduledFor !== null && c.startedAt > written,
  );
  assert.equal(healthy.state, 'passed', healthy.errors.join('\n'));
  assert.equal(healthy.readData, 'none', 'scheduled checks read metadata only by default');
  assert.equal(healthy.recoveryPoints, 1);

  // One flipped byte inside a pack's data: its header still reads, its chunk no longer decrypts.
  const sub = (await readdir(join(repo, 'data')))[0]!;
  const pack = (await readdir(join(repo, 'data', sub)))[0]!;
  await flipByte(join(repo, 'data', sub, pack), 1000);
  const flipped = new Date().toISOString();
  const metadataOnly = await finishedCheck(
    'a scheduled metadata check after the damage',
    (c) => c.scheduledFor !== null && c.startedAt > flipped,
  );
  assert.equal(metadataOnly.state, 'passed', 'a metadata check does not read pack data');

  const started = await server.api('POST', '/api/checks', { readDataPercent: 100 });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const failed = await finishedCheck('the read-data check', (c) => c.id === started.body.id);
  assert.equal(failed.state, 'failed');
  assert.equal(failed.readData, '100%');
  assert.ok(
    failed.errors.some((e) => e.includes(pack.slice(0, 16))),
    `the error names the damaged pack: ${failed.errors.join('\n')}`,
  );

  const key = `check-failed:${failed.id}`;
  const [delivered] = await server.waitFor('the check-failed webhook', async () => {
    const got = webhook.deliveries.filter((h) => h.headers['x-goldsnap-delivery'] === key);
    return got.length ? got : undefined;
  });
  assert.equal(delivered.headers['x-goldsnap-event'], 'check-failed');
  assert.ok(signedWith(delivered, hook.secret), 'signed with the secret the catalog holds sealed');
  assert.deepEqual(JSON.parse(delivered.body).details.errors, failed.errors.slice(0, 20));
  const sent = await server.waitFor('the check-failed e-mail', async () => mail.mails.find((m) => m.includes(key)));
  assert.match(sent, new RegExp(`^Subject: \\[goldsnap\\] Repository check ${failed.id} found`, 'm'));

  // A second failed check is a second event; the first is never sent again.
  const again = await server.api('POST', '/api/checks', { readDataPercent: 100 });
  const second = await finishedCheck('the second read-data check', (c) => c.id === again.body.id);
  assert.equal(second.state, 'failed');
  await server.waitFor('the second check-failed webhook and e-mail', async () =>
    webhook.deliveries.some((h) => h.headers['x-goldsnap-delivery'] === `check-failed:${second.id}`) &&
    mail.mails.some((m) => m.includes(`check-failed:${second.id}`))
      ? true
      : undefined,
  );
  assert.equal(
    webhook.deliveries.filter((h) => h.headers['x-goldsnap-delivery'] === key).length,
    1,
    'one webhook per failed check',
  );
  assert.equal(mail.mails.filter((m) => m.includes(key)).length, 1, 'one e-mail per failed check');

  // The API: filtered and paged like every list; a wrong filter is refused naming the field.
  const failedOnly = await server.api('GET', '/api/checks?state=failed&limit=1');
  assert.equal(failedOnly.body.length, 1);
  assert.equal(failedOnly.body[0].id, second.id);
  assert.equal(Number((await fetchHeaders('/api/checks?state=failed&limit=1')).get('x-total-count')), 2);
  const refused = await server.api('GET', '/api/checks?state=broken');
  assert.equal(refused.status, 400);
  assert.equal(refused.body.field, 'state');
  const events = (await server.api('GET', '/api/alerts/events')).body as Array<{
    key: string;
    deliveries: Array<{ state: string }>;
  }>;
  assert.deepEqual(
    events.find((e) => e.key === key)?.deliveries.map((d) => d.state),
    ['sent', 'sent'],
  );
});

async function fetchHeaders(path: string): Promise<Headers> {
  const res = await fetch(new URL(path, server.url), { headers: { authorization: `Bearer ${server.adminToken}` } });
  await res.arrayBuffer();
  return res.headers;
}
