import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { newMasterKey } from '../../src/repository/crypto.ts';
import { createKeySlot } from '../../src/repository/key-slots.ts';
import { MiB, makeDiskImage, sha256File, tempDir } from '../support/disk-images.ts';
import { goldsnap, goldsnapJson, TEST_PASSPHRASE } from '../support/goldsnap-cli.ts';

async function newRepo(t: any) {
  const dir = await tempDir(t);
  const repo = join(dir, 'repo');
  await goldsnapJson(['repo', 'init', '--repo', repo, '--pack-size', '1M']);
  return { dir, repo };
}

async function editJson(path: string, edit: (o: any) => void): Promise<void> {
  const o = JSON.parse(await readFile(path, 'utf8'));
  edit(o);
  await writeFile(path, JSON.stringify(o, null, 2));
}

test("a config changed behind goldsnap's back is refused, even rewritten as format 1", async (t) => {
  const { dir, repo } = await newRepo(t);
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 2 * MiB, 1);
  await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  const original = await readFile(join(repo, 'config'), 'utf8');
  const edits: [string, (o: any) => void][] = [
    [
      'chunkSize',
      (o) => {
        o.chunkSize /= 2;
      },
    ],
    [
      'id',
      (o) => {
        o.id = 'f'.repeat(32);
      },
    ],
    [
      'downgrade',
      (o) => {
        o.version = 1;
        delete o.mac;
        o.chunkSize /= 2;
      },
    ],
  ];
  for (const [what, edit] of edits) {
    await writeFile(join(repo, 'config'), original);
    await editJson(join(repo, 'config'), edit);
    const check = await goldsnap(['repo', 'check', '--read-data', '--repo', repo]);
    assert.equal(check.code, 1, `${what}: ${check.stdout}`);
    assert.match(check.stderr, /the config of .* has been altered or damaged/, what);
  }
  await writeFile(join(repo, 'config'), original);
  assert.deepEqual((await goldsnapJson(['repo', 'check', '--repo', repo])).errors, []);
});

test('a format-1 repository opens, check says to migrate, and migrate authenticates its config', async (t) => {
  const dir = await tempDir(t);
  const repo = join(dir, 'repo');
  // What goldsnap before format 2 wrote: a key slot holding only the master key, a config without MAC.
  await mkdir(join(repo, 'keys'), { recursive: true });
  await writeFile(
    join(repo, 'keys', '0123456789abcdef'),
    JSON.stringify(await createKeySlot(newMasterKey(), TEST_PASSPHRASE)),
  );
  await writeFile(
    join(repo, 'config'),
    JSON.stringify({
      format: 'goldsnap-repository',
      version: 1,
      id: 'a'.repeat(32),
      chunkSize: MiB,
      packSize: MiB,
      created: new Date().toISOString(),
    }),
  );
  const image = join(dir, 'disk.img');
  await makeDiskImage(image, 3 * MiB, 2);
  const b = await goldsnapJson(['repo', 'backup-image', image, '--repo', repo]);
  const before = await goldsnapJson(['repo', 'check', '--repo', repo]);
  assert.deepEqual(before.errors, []);
  assert.match(
    before.warnings.join('\n'),
    /config is not authenticated \(repository format 1\): run `goldsnap repo migrate`/,
  );

  assert.deepEqual(await goldsnapJson(['repo', 'migrate', '--repo', repo]), { from: 1, to: 2 });
  const config = JSON.parse(await readFile(join(repo, 'config'), 'utf8'));
  assert.equal(config.version, 2);
  assert.match(config.mac, /^[0-9a-f]{64}$/);
  assert.deepEqual(
    (await readdir(join(repo, 'keys'))).length,
    1,
    'the old slot was replaced by one that vouches for the config',
  );
  const after = await goldsnapJson(['repo', 'check', '--read-data', '--repo', repo]);
  assert.deepEqual([after.errors, after.warnings], [[], []]);
  const out = join(dir, 'out.img');
  await goldsnapJson(['repo', 'restore-image', b.snapshot, out, '--repo', repo]);
  assert.equal(await sha256File(out), await sha256File(image));
  assert.deepEqual(await goldsnapJson(['repo', 'migrate', '--repo', repo]), { from: 2, to: 2 });
});

test('a damaged key slot is reported as damage, not as a wrong passphrase', async (t) => {
  const { repo } = await newRepo(t);
  const [only] = await readdir(join(repo, 'keys'));
  const slotPath = join(repo, 'keys', only);
  const original = await readFile(slotPath, 'utf8');
  // One character of the wrapped key changed, as a bad sector or a careless edit would.
  await editJson(slotPath, (o) => {
    o.wrappedKey = (o.wrappedKey[5] === 'A' ? 'B' : 'A') + o.wrappedKey.slice(1).replace(/^(.{4})./, '$1Q');
  });
  const damaged = await goldsnap(['repo', 'snapshots', '--repo', repo]);
  assert.equal(damaged.code, 1);
  assert.match(
    damaged.stderr,
    new RegExp(`key slot damaged in .*keys/${only} \\(its content does not match its checksum\\)`),
  );
  assert.doesNotMatch(damaged.stderr, /wrong passphrase/);
  await writeFile(slotPath, '{"kdf": "scrypt", "N": 32768, "r"');
  assert.match((await goldsnap(['repo', 'snapshots', '--repo', repo])).stderr, /key slot damaged .*not valid JSON/);

  // With a second slot, the repository opens; check names the damaged one, which can be removed.
  await writeFile(slotPath, original);
  const second = await goldsnapJson(['repo', 'key', 'add', '--repo', repo], {
    GOLDSNAP_NEW_PASSWORD: 'second passphrase',
  });
  await writeFile(slotPath, original.replace(/"salt": "./, '"salt": "%'));
  const check = await goldsnap(['repo', 'check', '--repo', repo, '--json'], { GOLDSNAP_PASSWORD: 'second passphrase' });
  assert.equal(check.code, 1);
  assert.match(
    JSON.parse(check.stdout).errors.join('\n'),
    new RegExp(`key slot ${only} is damaged .*goldsnap repo key remove ${only}`),
  );
  const listed = await goldsnapJson(['repo', 'key', 'list', '--repo', repo], {
    GOLDSNAP_PASSWORD: 'second passphrase',
  });
  assert.match(listed.find((s: any) => s.id === only).damaged, /salt is not 16 bytes|checksum/);
  await goldsnapJson(['repo', 'key', 'remove', only, '--repo', repo], { GOLDSNAP_PASSWORD: 'second passphrase' });
  assert.deepEqual(
    (await goldsnapJson(['repo', 'key', 'list', '--repo', repo], { GOLDSNAP_PASSWORD: 'second passphrase' })).map(
      (s: any) => s.id,
    ),
    [second.id],
  );
  const wrong = await goldsnap(['repo', 'snapshots', '--repo', repo], { GOLDSNAP_PASSWORD: 'not it' });
  assert.match(wrong.stderr, /wrong passphrase/);
});
