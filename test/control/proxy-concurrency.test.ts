import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Cloud, CloudSnapshot } from '../../src/cloud/cloud.ts';
import type { DiskReader } from '../../src/dataplane/disk-io.ts';
import { restoreDisk } from '../../src/dataplane/restore-disk.ts';
import { ChunkCodec } from '../../src/dataplane/chunk-codec.ts';
import type { ProxyWork } from '../../src/control/proxy/protocol.ts';
import { runProxy } from '../../src/control/proxy/proxy.ts';
import { FsBackend } from '../../src/repository/backend/fs.ts';
import { Repository } from '../../src/repository/repository.ts';

/**
 * One proxy process, two jobs at once, against a stand-in for the server's /internal/proxy API:
 * the first transfer cannot read a byte until the second job has been handed out (so this only
 * ends if both run at once), and the second fails mid-read. The first must still complete, and its
 * disk must restore bit for bit from the shared repository.
 */

const MiB = 1024 * 1024;

function snapshot(name: string, sizeBytes: number): CloudSnapshot {
  return {
    id: `/snapshots/${name}`,
    name,
    diskId: `/disks/${name}`,
    region: 'westeurope',
    sizeBytes,
    tags: {},
    createdAt: '',
  };
}

test('a proxy with two jobs runs them at once, and the one that fails leaves the other whole', {
  timeout: 120_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gs-proxy-jobs-'));
  const repo = await Repository.init(new FsBackend(join(dir, 'repo')), 'test-passphrase', {
    chunkSize: 256 * 1024,
    packSize: MiB,
  });
  const good = Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(MiB), randomBytes(2 * MiB)]);
  const work: ProxyWork[] = [
    { jobId: 1, kind: 'transfer', runId: 'run-1', diskName: 'good', snapshot: snapshot('good', good.length) },
    { jobId: 2, kind: 'transfer', runId: 'run-1', diskName: 'bad', snapshot: snapshot('bad', 4 * MiB) },
  ];
  let secondHandedOut!: () => void;
  const bothClaimed = new Promise<void>((resolve) => {
    secondHandedOut = resolve;
  });
  const cloud = {
    allocatedRanges: async (s: CloudSnapshot) => [{ offset: 0, length: s.sizeBytes }],
    openSnapshot: async (s: CloudSnapshot): Promise<DiskReader> => ({
      sizeBytes: s.sizeBytes,
      read: async (offset, into) => {
        await bothClaimed;
        if (s.name === 'bad') throw new Error('the snapshot cannot be read (test)');
        good.copy(into, 0, offset, offset + into.length);
      },
      close: async () => {},
    }),
  } as unknown as Cloud;

  const completed = new Map<number, { fixedIndex: string }>();
  const failed = new Map<number, string>();
  let claims = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      const json = JSON.parse(body || '{}');
      let answer: unknown = { ok: true };
      if (req.url === '/internal/proxy/claim') {
        answer = work[claims] ?? null;
        claims += 1;
        if (claims === 2) secondHandedOut();
      } else if (req.url?.endsWith('/complete')) {
        completed.set(Number(req.url.split('/')[4]), json.result);
      } else if (req.url?.endsWith('/fail')) {
        failed.set(Number(req.url.split('/')[4]), json.error);
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const lines: string[] = [];
  try {
    await runProxy({
      region: 'westeurope',
      serverUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      token: 'test',
      repo,
      cloud,
      idleMs: 300,
      jobs: 2,
      bandwidth: 0,
      log: (line) => lines.push(line),
    });
    assert.match(failed.get(2) ?? '', /cannot be read/, lines.join('\n'));
    assert.equal(completed.has(2), false);
    const result = completed.get(1);
    assert.ok(result, `the good transfer completed:\n${lines.join('\n')}`);
    assert.equal(failed.has(1), false);

    // Its disk, from the repository the failed transfer also wrote to.
    const disk = await repo.loadFixedIndex(result.fixedIndex);
    const restored = Buffer.alloc(good.length);
    await restoreDisk({
      repo,
      index: await repo.loadIndex(),
      disk,
      codec: new ChunkCodec(repo.key),
      writer: {
        zeroFilled: true,
        write: async (offset, data) => {
          restored.set(data, offset);
        },
        commit: async () => {},
        abort: async () => {},
      },
    });
    assert.ok(restored.equals(good), 'the good disk restores bit for bit');
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
