import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProxyCredentialStore } from '../../src/control/catalog/proxy-credentials.ts';
import { forEachBackend } from './backends.ts';

/** Per-region proxy credentials in the catalog, on both catalog backends. */
forEachBackend('proxy credentials', (b) => {
  test('a credential names its region, is stored hashed, and stops working once revoked', async () => {
    await b.db.exec('DELETE FROM proxy_credentials');
    const store = new ProxyCredentialStore(b.db);
    const { token, credential } = await store.create('westeurope', 'vm in weu', 'admin');
    assert.equal((await store.verify(token))?.region, 'westeurope');
    const rows = await b.db.query<{ token_hash: string }>('SELECT token_hash FROM proxy_credentials');
    assert.ok(!JSON.stringify(rows).includes(token), 'the secret is not stored');
    assert.equal(await store.verify(`${token}x`), undefined);
    await assert.rejects(store.create('West Europe', 'bad', 'admin'), /region/);

    assert.equal((await store.revoke(credential.id.slice(0, 8)))?.id, credential.id);
    assert.equal(await store.verify(token), undefined, 'revoked');
    assert.equal((await store.list()).length, 0);
    assert.ok((await store.list({ includeRevoked: true }))[0].revokedAt);
  });

  test("the credentials a dead server's launcher issued are found and revoked together", async () => {
    await b.db.exec('DELETE FROM proxy_credentials');
    const store = new ProxyCredentialStore(b.db);
    const dead = await store.create('eastus', 'local proxy eastus', 'launcher:host-a:111');
    const alive = await store.create('eastus', 'local proxy eastus', 'launcher:host-a:222');
    const other = await store.create('eastus', 'local proxy eastus', 'launcher:host-b:111');
    assert.deepEqual((await store.liveIssuers('launcher:host-a:')).sort(), [
      'launcher:host-a:111',
      'launcher:host-a:222',
    ]);
    assert.equal(await store.revokeIssuedBy('launcher:host-a:111'), 1);
    assert.equal(await store.verify(dead.token), undefined);
    assert.ok(await store.verify(alive.token));
    assert.ok(await store.verify(other.token));
  });
});
