import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AlertStore } from '../../src/control/alerts/alert-store.ts';
import { SecretBox } from '../../src/control/catalog/secret-box.ts';
import { newMasterKey } from '../../src/repository/crypto.ts';
import { forEachBackend } from './backends.ts';

/**
 * Webhook signing secrets at rest: sealed in alert_channels under a key derived from the
 * repository master key, opened for signing, bound to their row, and plaintext rows left by an
 * older server sealed in place.
 */
forEachBackend('alert channel secrets', (b) => {
  test('a secret is stored sealed, opened for delivery, and cannot be moved to another channel', async () => {
    const box = SecretBox.fromMasterKey(newMasterKey());
    const store = new AlertStore(b.db, box);
    const secret = 'a-webhook-secret-of-some-length';
    const { channel } = await store.createChannel({
      name: 'hook',
      kind: 'webhook',
      target: 'http://127.0.0.1:9/x',
      secret,
    });
    const [row] = await b.db.query<{ secret: string }>('SELECT secret FROM alert_channels WHERE id = $1', [channel.id]);
    assert.ok(row && !row.secret.includes(secret), 'the row does not hold the secret');
    assert.ok(SecretBox.isSealed(row.secret));
    assert.equal(await store.secretOf(channel.id), secret);

    await store.raise({ key: 'test:1', kind: 'run-failed', subject: 's', details: {} });
    const [due] = await store.claimDue(10, 60_000);
    assert.equal(due?.channel.secret, secret, 'a delivery is signed with the opened secret');

    // Copied over another channel's row, the sealed value does not open: it names its row.
    const other = await store.createChannel({ name: 'other', kind: 'webhook', target: 'http://127.0.0.1:9/y' });
    await b.db.query('UPDATE alert_channels SET secret = $1 WHERE id = $2', [row.secret, other.channel.id]);
    await assert.rejects(store.secretOf(other.channel.id), /failed authentication/);

    // Another repository's key does not open it either.
    const stranger = new AlertStore(b.db, SecretBox.fromMasterKey(newMasterKey()));
    await assert.rejects(stranger.secretOf(channel.id), /failed authentication/);
  });

  test('plaintext secrets of an older server are sealed in place, once', async () => {
    const store = new AlertStore(b.db, SecretBox.fromMasterKey(newMasterKey()));
    await b.db.query(
      "INSERT INTO alert_channels (id, name, kind, target, secret) VALUES ('old', 'old', 'webhook', 'http://127.0.0.1:9/z', 'plain-old-secret-value')",
    );
    assert.equal(await store.sealPlaintextSecrets(), 1);
    assert.equal(await store.sealPlaintextSecrets(), 0);
    const [row] = await b.db.query<{ secret: string }>("SELECT secret FROM alert_channels WHERE id = 'old'");
    assert.ok(row && SecretBox.isSealed(row.secret) && !row.secret.includes('plain-old-secret-value'));
    assert.equal(await store.secretOf('old'), 'plain-old-secret-value');
  });
});
