import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { request } from 'node:https';
import { randomBytes } from 'node:crypto';
import { compute, download, FAST, MiB, pageBlob, start, tempDir } from './helpers.ts';
import { readConnectionInfo, type EmulatorConnectionInfo } from '../../src/emulator/emulator.ts';

const NODE = process.execPath;

function controlCall(
  info: EmulatorConnectionInfo,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: any }> {
  return new Promise((ok, fail) => {
    const u = new URL(path, info.armEndpoint);
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        method,
        hostname: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        ca: info.caCertPem,
        headers: {
          authorization: `Bearer ${info.token}`,
          ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          ok({
            status: res.statusCode!,
            json: chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined,
          }),
        );
      },
    );
    req.on('error', fail);
    req.end(data);
  });
}

test('survives kill -9: acknowledged state and data are kept, restart works', async () => {
  const { dir, cleanup } = await tempDir();
  const child = spawn(NODE, ['src/emulator/main.ts', '--data', dir, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const line = await new Promise<string>((ok, fail) => {
      createInterface({ input: child.stdout! }).once('line', ok);
      child.once('exit', (code) => fail(new Error(`emulator exited ${code}`)));
    });
    const ready = JSON.parse(line) as { armEndpoint: string; connectionFile: string };
    const info = readConnectionInfo(ready.connectionFile);
    assert.equal(info.armEndpoint, ready.armEndpoint);

    // HTTP control API: create a VM and write to it.
    const created = await controlCall(info, 'POST', '/_emulator/vms', {
      name: 'vm-k',
      resourceGroup: 'rg-k',
      region: 'eastus',
      tags: { env: 'prod' },
      disks: [
        { name: 'vm-k-os', sizeBytes: 2 * MiB, role: 'os', fill: 'os-like' },
        { name: 'vm-k-d', sizeBytes: MiB, role: 'data', fill: 'random' },
      ],
    });
    assert.equal(created.status, 201);
    assert.equal((await controlCall(info, 'GET', '/_emulator/info')).json.vms.length, 1);
    assert.equal((await controlCall(info, 'POST', '/_emulator/vms/vm-k/writes', { fraction: 0.1 })).status, 200);
    const osId: string = created.json.disks[0].id;

    const c = compute(info);
    await c.snapshots.beginCreateOrUpdateAndWait(
      'rg-k',
      'snap-k',
      { location: 'eastus', incremental: true, creationData: { createOption: 'Copy', sourceResourceId: osId } },
      FAST,
    );
    const contentAtSnap = await new Promise<Buffer>((ok, fail) => {
      const u = new URL(`/_emulator/disk-content?id=${encodeURIComponent(osId)}`, info.armEndpoint);
      request(
        {
          hostname: u.hostname,
          port: u.port,
          path: u.pathname + u.search,
          ca: info.caCertPem,
          headers: { authorization: `Bearer ${info.token}` },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => ok(Buffer.concat(chunks)));
        },
      )
        .on('error', fail)
        .end();
    });
    assert.equal(contentAtSnap.length, 2 * MiB);

    // An upload in progress: acknowledged pages must survive kill -9.
    await c.disks.beginCreateOrUpdateAndWait(
      'rg-k',
      'up',
      { location: 'eastus', creationData: { createOption: 'Upload', uploadSizeBytes: 4 * MiB } },
      FAST,
    );
    const sas = (await c.disks.beginGrantAccessAndWait('rg-k', 'up', { access: 'Write', durationInSeconds: 600 }, FAST))
      .accessSAS!;
    const blob = pageBlob(info, sas);
    const expected = Buffer.alloc(4 * MiB);
    for (let i = 0; i < 8; i++) {
      const chunk = randomBytes(256 * 1024);
      await blob.uploadPages(chunk, i * 256 * 1024, chunk.length);
      chunk.copy(expected, i * 256 * 1024);
    }
    // Fire more writes and kill the process while they are in flight.
    const inflight = Array.from({ length: 8 }, (_, i) =>
      blob.uploadPages(randomBytes(128 * 1024), 2 * MiB + i * 128 * 1024, 128 * 1024).catch(() => undefined),
    );
    await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await Promise.all(inflight);
    await new Promise((r) =>
      child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r),
    );

    // Restart in-process on the same data directory.
    const emu = await start(dir);
    try {
      assert.equal(emu.subscriptionId, info.subscriptionId);
      assert.equal(emu.token, info.token);
      assert.equal(emu.caCertPem, info.caCertPem);
      const c2 = compute(emu);
      const vms = [];
      for await (const v of c2.virtualMachines.listAll()) vms.push(v.name);
      assert.deepEqual(vms, ['vm-k']);
      const snap = await c2.snapshots.get('rg-k', 'snap-k');
      assert.equal(snap.provisioningState, 'Succeeded');
      assert.deepEqual(await emu.control.readDisk(snap.id!), contentAtSnap);
      // Acknowledged pages are there; the upload disk is still ActiveUpload with its grant.
      const up = await c2.disks.get('rg-k', 'up');
      assert.equal(up.diskState, 'ActiveUpload');
      const got = await emu.control.readDisk(up.id!);
      assert.deepEqual(got.subarray(0, 2 * MiB), expected.subarray(0, 2 * MiB));
      // The old SAS (old port) still authorizes against the restarted server's path.
      const sasNew = new URL(sas);
      sasNew.port = new URL(emu.armEndpoint).port;
      const blob2 = pageBlob(emu, sasNew.toString());
      await blob2.uploadPages(Buffer.alloc(512, 7), 0, 512);
      assert.deepEqual(await download(blob2, 0, 512), Buffer.alloc(512, 7));
      await c2.disks.beginRevokeAccessAndWait('rg-k', 'up', FAST);
      // The data dir still works for new operations.
      await c2.snapshots.beginCreateOrUpdateAndWait(
        'rg-k',
        'snap-k2',
        { location: 'eastus', incremental: true, creationData: { createOption: 'Copy', sourceResourceId: osId } },
        FAST,
      );
      assert.deepEqual(await emu.control.readDisk((await c2.snapshots.get('rg-k', 'snap-k2')).id!), contentAtSnap);
    } finally {
      await emu.close();
    }
    // A clean stop/start cycle keeps everything too.
    const emu3 = await start(dir);
    try {
      assert.equal(emu3.control.listVms().length, 1);
    } finally {
      await emu3.close();
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await cleanup();
  }
});
