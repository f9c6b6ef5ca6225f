import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, suite, test, type TestContext } from 'node:test';
import { AzureBlobBackend, parseAzureLocation } from '../../src/repository/backend/azure-blob.ts';
import { ObjectNotFoundError, type Backend, type ObjectInfo } from '../../src/repository/backend/backend.ts';
import { FsBackend } from '../../src/repository/backend/fs.ts';
import { openBackend } from '../../src/repository/backend/open.ts';
import { S3Backend, parseS3Location } from '../../src/repository/backend/s3.ts';
import { mapLimit } from '../../src/repository/concurrency.ts';
import { MiB, makeDiskImage, sha256File, tempDir } from '../support/disk-images.ts';
import { finished, goldsnap, goldsnapJson } from '../support/goldsnap-cli.ts';
import { AZURITE_KEY, startAzurite, startS3rver, type ObjectStore } from '../support/object-stores.ts';

// One s3rver and one Azurite for the whole file; every test works under a prefix of its own.
let s3: ObjectStore;
let azure: ObjectStore;
before(async () => {
  const started = await Promise.allSettled([startS3rver(), startAzurite()]);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((s) => (s.status === 'fulfilled' ? s.value.stop() : undefined)));
    throw failed.reason;
  }
  [s3, azure] = started.map((s) => (s as PromiseFulfilledResult<ObjectStore>).value);
});
after(async () => {
  await Promise.all([s3?.stop(), azure?.stop()]);
});

const unique = (what: string) => `${what}-${randomBytes(4).toString('hex')}`;

interface Kind {
  name: string;
  /** A fresh location: a new prefix of the running bucket/container, or a new folder. */
  location(t: TestContext): Promise<string>;
  /** A location in a bucket/container (or folder) that does not exist yet. */
  missingLocation(t: TestContext): Promise<string>;
  /** The backend for a location, closed when the test ends. */
  open(t: TestContext, location: string, options?: { listPageSize?: number }): Backend;
  secret?: () => string;
  /** s3rver answers a ranged GET of an empty object with Content-Length 1 and no body (S3 says 416). */
  rangedReadOfEmptyObjectWorks: boolean;
}

function closing(t: TestContext, b: Backend): Backend {
  t.after(() => b.close());
  return b;
}

const kinds: Kind[] = [
  {
    name: 'fs',
    location: async (t) => join(await tempDir(t), 'repo'),
    missingLocation: async (t) => join(await tempDir(t), 'not', 'there', 'yet'),
    open: (t, location) => closing(t, new FsBackend(location)),
    rangedReadOfEmptyObjectWorks: true,
  },
  {
    name: 's3',
    location: async () => `${s3.location}/${unique('conf')}`,
    missingLocation: async () => `s3:${new URL(s3.location.slice('s3:'.length)).origin}/${unique('bucket')}/repo`,
    open: (t, location, options) => closing(t, new S3Backend(location, { env: s3.env, ...options })),
    secret: () => s3.secret,
    rangedReadOfEmptyObjectWorks: false,
  },
  {
    name: 'azure',
    location: async () => `${azure.location}/${unique('conf')}`,
    missingLocation: async () =>
      `${azure.location.slice(0, azure.location.lastIndexOf('/'))}/${unique('container')}/repo`,
    open: (t, location, options) => closing(t, new AzureBlobBackend(location, { env: azure.env, ...options })),
    secret: () => azure.secret,
    rangedReadOfEmptyObjectWorks: true,
  },
];

async function listAll(b: Backend, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of b.list(prefix)) out.push(o);
  return out.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

async function assertNotFound(p: Promise<unknown>, name: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ObjectNotFoundError, `expected ObjectNotFoundError, got ${err}`);
    assert.equal(err.objectName, name);
    return true;
  });
}

// The kinds run side by side (each test uses its own prefix), which keeps the file fast.
suite('repository backends', { concurrency: true }, () => {
  for (const kind of kinds) {
    suite(`${kind.name} backend conformance`, { concurrency: true }, () => {
      test('put and get whole objects and byte ranges', async (t) => {
        const b = kind.open(t, await kind.location(t));
        await b.create();
        const data = randomBytes(3 * MiB + 17);
        await b.put('data/ab/pack1', data);
        assert.deepEqual(await b.get('data/ab/pack1'), data);
        assert.deepEqual(await b.get('data/ab/pack1', 0, 10), data.subarray(0, 10));
        assert.deepEqual(await b.get('data/ab/pack1', MiB + 5, 4096), data.subarray(MiB + 5, MiB + 5 + 4096));
        assert.deepEqual(
          await b.get('data/ab/pack1', 2 * MiB),
          data.subarray(2 * MiB),
          'offset without length reads to the end',
        );
        assert.deepEqual(
          await b.get('data/ab/pack1', data.length - 7, 100),
          data.subarray(data.length - 7),
          'a range past the end is cut short',
        );
        assert.equal((await b.get('data/ab/pack1', data.length)).length, 0, 'reading at the end gives nothing');
        assert.equal((await b.get('data/ab/pack1', 100, 0)).length, 0);
        await b.put('empty', new Uint8Array(0));
        assert.equal((await b.get('empty')).length, 0);
        if (kind.rangedReadOfEmptyObjectWorks) assert.equal((await b.get('empty', 0, 10)).length, 0);
      });

      test('absent objects: get throws ObjectNotFoundError, stat is undefined, delete is fine', async (t) => {
        const b = kind.open(t, await kind.location(t));
        await b.create();
        await assertNotFound(b.get('config'), 'config');
        await assertNotFound(b.get('data/00/nothing', 0, 10), 'data/00/nothing');
        await assertNotFound(b.get('data/00/nothing', 0, 0), 'data/00/nothing');
        assert.equal(await b.stat('data/00/nothing'), undefined);
        await b.delete('data/00/nothing');
        assert.deepEqual(await listAll(b, 'data/'), []);
      });

      test('a bucket, container or folder that is not there yet reads as empty; create makes it', async (t) => {
        const b = kind.open(t, await kind.missingLocation(t));
        await assertNotFound(b.get('config'), 'config');
        assert.equal(await b.stat('config'), undefined);
        assert.deepEqual(await listAll(b, ''), []);
        await b.create();
        await b.put('keys/one', Buffer.from('k'));
        assert.deepEqual(
          (await listAll(b, '')).map((o) => o.name),
          ['keys/one'],
        );
      });

      test('two creates racing for a missing bucket, container or folder both succeed', async (t) => {
        const location = await kind.missingLocation(t);
        await Promise.all([kind.open(t, location).create(), kind.open(t, location).create()]);
        assert.deepEqual(await listAll(kind.open(t, location), ''), []);
      });

      test('stat gives size and mtime', async (t) => {
        const b = kind.open(t, await kind.location(t));
        await b.create();
        const before = Date.now();
        await b.put('index/abc', Buffer.alloc(1234, 7));
        const s = await b.stat('index/abc');
        assert.equal(s?.name, 'index/abc');
        assert.equal(s?.size, 1234);
        assert.ok(s!.mtime instanceof Date);
        // Object stores keep whole seconds; allow for that and a little clock skew.
        assert.ok(Math.abs(s!.mtime.getTime() - before) < 5000, `mtime ${s!.mtime.toISOString()} is about now`);
      });

      test('list finds objects by prefix with names relative to the repository', async (t) => {
        const b = kind.open(t, await kind.location(t));
        await b.create();
        const names = ['config', 'keys/k1', 'data/00/p1', 'data/01/p2', 'data/0f/p3', 'index/i1', 'snapshots/s1'];
        await Promise.all(names.map((n, i) => b.put(n, Buffer.alloc(i + 1, i))));
        const all = await listAll(b, '');
        assert.deepEqual(
          all.map((o) => o.name),
          [...names].sort(),
        );
        for (const o of all) assert.equal(o.size, names.indexOf(o.name) + 1, `size of ${o.name}`);
        assert.ok(all.every((o) => o.mtime instanceof Date && !Number.isNaN(o.mtime.getTime())));
        assert.deepEqual(
          (await listAll(b, 'data/')).map((o) => o.name),
          ['data/00/p1', 'data/01/p2', 'data/0f/p3'],
        );
        assert.deepEqual(
          (await listAll(b, 'data/0')).map((o) => o.name),
          ['data/00/p1', 'data/01/p2', 'data/0f/p3'],
        );
        assert.deepEqual(
          (await listAll(b, 'data/01/')).map((o) => o.name),
          ['data/01/p2'],
        );
        assert.deepEqual(
          (await listAll(b, 'keys/')).map((o) => o.name),
          ['keys/k1'],
        );
        assert.deepEqual(await listAll(b, 'locks/'), []);
      });

      test('list pages through more than 1000 objects', async (t) => {
        // A small page size makes every backend page; the second listing uses the service's own
        // page size (S3 returns at most 1000 keys per page).
        const location = await kind.location(t);
        const b = kind.open(t, location, { listPageSize: 400 });
        await b.create();
        const names = Array.from(
          { length: 1050 },
          (_, i) => `data/${(i % 256).toString(16).padStart(2, '0')}/${i.toString(16).padStart(64, '0')}`,
        );
        await mapLimit(names, 32, (n) => b.put(n, Buffer.from(n)));
        await b.put('index/other', Buffer.from('x'));
        const listed = await listAll(b, 'data/');
        assert.equal(listed.length, 1050);
        assert.deepEqual(
          listed.map((o) => o.name),
          [...names].sort(),
        );
        assert.ok(listed.every((o) => o.size === o.name.length));
        assert.deepEqual(
          (await listAll(kind.open(t, location), 'data/')).map((o) => o.name),
          [...names].sort(),
        );
      });

      test('delete removes an object', async (t) => {
        const b = kind.open(t, await kind.location(t));
        await b.create();
        await b.put('snapshots/s1', Buffer.from('one'));
        await b.put('snapshots/s2', Buffer.from('two'));
        await b.delete('snapshots/s1');
        await assertNotFound(b.get('snapshots/s1'), 'snapshots/s1');
        assert.equal(await b.stat('snapshots/s1'), undefined);
        assert.deepEqual(
          (await listAll(b, 'snapshots/')).map((o) => o.name),
          ['snapshots/s2'],
        );
        await b.delete('snapshots/s1');
      });

      test('put overwrites', async (t) => {
        const b = kind.open(t, await kind.location(t));
        await b.create();
        await b.put('locks/session', Buffer.from('first version, longer'));
        await b.put('locks/session', Buffer.from('second'));
        assert.equal((await b.get('locks/session')).toString(), 'second');
        assert.equal((await b.stat('locks/session'))?.size, 6);
        assert.deepEqual(
          (await listAll(b, 'locks/')).map((o) => [o.name, o.size]),
          [['locks/session', 6]],
        );
      });

      test('create may be repeated until a config exists, then fails', async (t) => {
        const b = kind.open(t, await kind.location(t));
        await b.create();
        await b.create();
        await b.put('config', Buffer.from('{}'));
        await assert.rejects(b.create(), /already holds a repository/);
        assert.equal((await b.get('config')).toString(), '{}', 'the existing config is untouched');
      });

      test('object names are checked', async (t) => {
        const b = kind.open(t, await kind.location(t));
        await b.create();
        for (const bad of ['../escape', 'data/../config', '/abs', 'a//b', '']) {
          await assert.rejects(b.put(bad, Buffer.from('x')), /invalid object name/, bad);
        }
      });

      test('the location holds no secret and opens the same place again', async (t) => {
        const b = kind.open(t, await kind.location(t));
        await b.create();
        await b.put('keys/k', Buffer.from('key slot'));
        const secret = kind.secret?.();
        if (secret) {
          assert.ok(!b.location.includes(secret), b.location);
          await assert.rejects(
            b.get('nothing'),
            (err: Error) => !err.message.includes(secret) && err.message.includes(b.location),
          );
        }
        const reopened = openBackend(b.location);
        t.after(() => reopened.close());
        assert.equal(reopened.location, b.location);
        assert.equal(reopened.constructor, b.constructor);
      });
    });
  }

  test('fs: a spooled object (a pack written as it fills) is seen by nobody until published, whole; a discarded one leaves nothing', async (t) => {
    const b = closing(t, new FsBackend(join(await tempDir(t), 'repo')));
    await b.create();
    assert.ok(b.spool);
    const data = randomBytes(3 * MiB + 17);
    const spool = await b.spool('data/');
    // Pieces written at the same time and out of order, as a backup's sealed chunks are.
    const cuts = [0, 700_000, 1_500_000, 2_000_000, data.length];
    await Promise.all(
      cuts
        .slice(0, -1)
        .reverse()
        .map((from, i, all) => spool.write(from, data.subarray(from, cuts[all.length - i]))),
    );
    assert.deepEqual(await listAll(b, 'data/'), [], 'nothing is listed before publish');
    await spool.publish('data/ab/pack');
    assert.ok((await b.get('data/ab/pack')).equals(data));
    const leftovers = async () => {
      const out: string[] = [];
      for await (const o of b.listLeftovers?.() ?? []) out.push(o.name);
      return out;
    };
    assert.deepEqual(await leftovers(), []);

    const dropped = await b.spool('data/');
    await dropped.write(0, data.subarray(0, 1000));
    assert.equal((await leftovers()).length, 1, 'an unfinished spool is a leftover for prune');
    await dropped.discard();
    assert.deepEqual(await leftovers(), []);
    assert.deepEqual(
      (await listAll(b, 'data/')).map((o) => o.name),
      ['data/ab/pack'],
    );
  });

  test('locations: accepted forms, normalisation, and errors that name the accepted forms', () => {
    assert.deepEqual(parseS3Location('s3:http://127.0.0.1:9000/bucket/some/prefix/'), {
      endpoint: 'http://127.0.0.1:9000',
      bucket: 'bucket',
      prefix: 'some/prefix',
    });
    assert.deepEqual(parseS3Location('s3://my-bucket'), { bucket: 'my-bucket', prefix: '' });
    assert.deepEqual(parseS3Location('s3://my-bucket/a/b'), { bucket: 'my-bucket', prefix: 'a/b' });
    assert.equal(
      new S3Backend('s3:https://minio.example:9000//bucket//p/', { env: {} }).location,
      's3:https://minio.example:9000/bucket/p',
    );
    assert.equal(new S3Backend('s3://bucket/p', { env: {} }).location, 's3://bucket/p');
    assert.throws(() => parseS3Location('s3:http://127.0.0.1:9000/'), /names no bucket/);
    assert.throws(
      () => parseS3Location('s3:bucket/prefix'),
      /s3:http\(s\):\/\/host:port\/bucket\/prefix .* s3:\/\/bucket\/prefix/,
    );
    assert.throws(() => parseS3Location('s3:http://127.0.0.1:9000/Bad_Bucket'), /not a valid bucket name/);
    // Credentials in a URL are refused without being repeated.
    assert.throws(
      () => parseS3Location('s3:http://AKIAEXAMPLE:topsecret@127.0.0.1:9000/b/p'),
      (err: Error) => /must not hold credentials/.test(err.message) && !err.message.includes('topsecret'),
    );
    assert.throws(
      () => parseS3Location('s3://b/p?X-Amz-Signature=topsecret'),
      (err: Error) => !err.message.includes('topsecret'),
    );

    assert.deepEqual(parseAzureLocation('azure:http://127.0.0.1:10000/devstoreaccount1/container/pre/fix'), {
      serviceUrl: 'http://127.0.0.1:10000/devstoreaccount1',
      account: 'devstoreaccount1',
      container: 'container',
      prefix: 'pre/fix',
    });
    assert.deepEqual(parseAzureLocation('azure:https://acct.blob.core.windows.net/container/p'), {
      serviceUrl: 'https://acct.blob.core.windows.net',
      account: 'acct',
      container: 'container',
      prefix: 'p',
    });
    assert.deepEqual(parseAzureLocation('azure://container/p/'), { container: 'container', prefix: 'p' });
    assert.equal(
      new AzureBlobBackend('azure://container/p', { env: { AZURE_STORAGE_ACCOUNT: 'acct', AZURE_STORAGE_KEY: 'a2V5' } })
        .location,
      'azure://container/p',
    );
    assert.equal(
      new AzureBlobBackend('azure://container', {
        env: { AZURE_STORAGE_CONNECTION_STRING: 'AccountName=a;AccountKey=a2V5' },
      }).location,
      'azure://container',
    );
    assert.throws(
      () => new AzureBlobBackend('azure://container/p', { env: {} }),
      /AZURE_STORAGE_ACCOUNT .*AZURE_STORAGE_CONNECTION_STRING/,
    );
    assert.throws(() => parseAzureLocation('azure:http://127.0.0.1:10000/devstoreaccount1'), /names no container/);
    assert.throws(() => parseAzureLocation('azure://Bad_Container'), /not a valid container name/);
    assert.throws(
      () => parseAzureLocation('azure:http://127.0.0.1:10000/acct/c?sig=topsecret'),
      (err: Error) => /SAS/.test(err.message) && !err.message.includes('topsecret'),
    );

    assert.ok(openBackend('s3:http://127.0.0.1:9000/bucket/p') instanceof S3Backend);
    assert.ok(openBackend('azure:http://127.0.0.1:10000/devstoreaccount1/container/p') instanceof AzureBlobBackend);
    assert.ok(openBackend('file:/tmp/repo') instanceof FsBackend);
    assert.ok(openBackend('relative/repo') instanceof FsBackend);
    assert.throws(
      () => openBackend('gs://bucket/p'),
      (err: Error) =>
        /unknown repository location gs:\/\/bucket\/p/.test(err.message) &&
        /a folder path/.test(err.message) &&
        /s3:\/\/bucket\/prefix/.test(err.message) &&
        /azure:\/\/container\/prefix/.test(err.message),
    );
    assert.throws(
      () => openBackend('https://user:topsecret@example.com/x'),
      (err: Error) => !err.message.includes('topsecret'),
    );
  });

  test('opening a location does not load the cloud SDKs; the first request does', async () => {
    const open = new URL('../../src/repository/backend/open.ts', import.meta.url).href;
    const script = `
    import { registerHooks } from 'node:module';
    const loaded = new Set();
    registerHooks({ resolve(spec, ctx, next) { if (/^@(aws-sdk|azure)\\//.test(spec)) loaded.add(spec.split('/').slice(0, 2).join('/')); return next(spec, ctx); } });
    const { openBackend } = await import(${JSON.stringify(open)});
    openBackend('/tmp/some-folder');
    const s3 = openBackend('s3:http://127.0.0.1:9/bucket/p');
    openBackend('azure:http://127.0.0.1:9/devstoreaccount1/container/p');
    const before = [...loaded];
    await s3.stat('config').catch(() => {});
    console.log(JSON.stringify({ before, after: [...loaded] }));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_MAX_ATTEMPTS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { stdout, stderr, code } = await finished(child);
    assert.equal(code, 0, stderr);
    const { before, after } = JSON.parse(stdout);
    assert.deepEqual(before, []);
    assert.ok(after.includes('@aws-sdk/client-s3'), stdout);
    assert.ok(!after.includes('@azure/storage-blob'), stdout);
  });

  test('azure: the Azurite development key is used for devstoreaccount1 when no key is set', async (t) => {
    const b = closing(t, new AzureBlobBackend(`${azure.location}/${unique('devkey')}`, { env: {} }));
    await b.create();
    await b.put('config', Buffer.from('x'));
    assert.equal((await b.stat('config'))?.size, 1);
    assert.equal(azure.env.AZURE_STORAGE_KEY, AZURITE_KEY);
  });

  for (const store of ['s3', 'azure'] as const) {
    test(`the CLI backs up, restores and checks a disk image in a repository on ${store}`, async (t) => {
      const { location, env, secret } = store === 's3' ? s3 : azure;
      const dir = await tempDir(t);
      const repo = `${location}/${unique('cli')}`;
      const init = await goldsnapJson(['repo', 'init', '--repo', repo, '--pack-size', '4M'], env);
      assert.equal(init.location, repo);
      const again = await goldsnap(['repo', 'init', '--repo', repo], env);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already holds a repository/);

      const image = join(dir, 'disk.img');
      const size = 12 * MiB + 4321;
      await makeDiskImage(image, size, 13);
      const backup = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo, '--name', 'disk0'], env);
      assert.equal(backup.sizeBytes, size);
      assert.ok(backup.stats.newChunks > 0);

      const restored = join(dir, 'restored.img');
      await goldsnapJson(['repo', 'restore-image', backup.snapshot, restored, '--repo', repo], env);
      assert.equal((await stat(restored)).size, size);
      assert.equal(await sha256File(restored), await sha256File(image));

      const check = await goldsnap(['repo', 'check', '--read-data', '--repo', repo, '--json'], env);
      assert.equal(check.code, 0, check.stderr);
      const report = JSON.parse(check.stdout);
      assert.deepEqual(report.errors, []);
      assert.ok(report.packs >= 1 && report.bytesRead > 0);
      for (const output of [check.stdout, check.stderr, again.stderr])
        assert.ok(!output.includes(secret), 'no secret in the output');
    });
  }
});
