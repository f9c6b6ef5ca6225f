import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A running object store and how to reach it. */
export interface ObjectStore {
  /** Repository location of a bucket/container; append `/prefix` for a repository of its own. */
  location: string;
  /** Environment holding the credentials (to pass to the CLI or to a backend's `env` option). */
  env: Record<string, string>;
  /** The secret in `env`, which no location or message may show. */
  secret: string;
  stop(): Promise<void>;
}

/** Azurite's published development account key (not a secret). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const S3RVER = fileURLToPath(new URL('../../node_modules/s3rver/lib/s3rver.js', import.meta.url));

/**
 * A real S3 API (s3rver) on 127.0.0.1 at a free port, storing in a temp folder.
 *
 * It runs in a child process because s3rver makes its ListObjectsV2 continuation tokens with DES,
 * which OpenSSL 3 only has in its legacy provider: in a plain Node 24 process every truncated
 * listing (more than 1000 keys) fails with InternalError.
 * s3rver knows one access key, S3RVER, and does not verify SigV4 signatures, so the secret key is
 * random: it only serves to prove the secret never leaks into a location or message.
 */
export async function startS3rver(bucket = 'goldsnap-test'): Promise<ObjectStore> {
  const dir = await mkdtemp(join(tmpdir(), 'goldsnap-s3rver-'));
  const script = `
    const S3rver = require(${JSON.stringify(S3RVER)});
    const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: ${JSON.stringify(dir)}, vhostBuckets: false });
    server.run().then(a => console.log('s3rver listening on ' + a.port), err => { console.error(err); process.exit(1); });
    process.on('SIGTERM', () => process.exit(0));`;
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '--input-type=commonjs', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = watch(child);
  try {
    const port = await server.waitFor(/s3rver listening on (\d+)/, 30_000);
    const secret = `s3-secret-${randomBytes(12).toString('hex')}`;
    return {
      location: `s3:http://127.0.0.1:${port}/${bucket}`,
      env: {
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: secret,
        AWS_REGION: 'us-east-1',
        AWS_EC2_METADATA_DISABLED: 'true',
      },
      secret,
      async stop() {
        await server.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Collects a child's output; waits for a line; stops it (SIGTERM, then SIGKILL after 5 s). */
function watch(child: ChildProcess) {
  let output = '';
  child.stdout!.on('data', (d) => {
    output += d;
  });
  child.stderr!.on('data', (d) => {
    output += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;
  // Should the test process end without stopping the server, do not leave it behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  return {
    output: () => output,
    async waitFor(pattern: RegExp, timeoutMs: number): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const m = pattern.exec(output);
        if (m) return m[1] ?? m[0];
        if (!running())
          throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) before it listened:\n${output}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`the server did not listen within ${timeoutMs} ms:\n${output}`);
    },
    async stop(): Promise<void> {
      if (!running()) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

const AZURITE_BLOB = realpathSync(fileURLToPath(new URL('../../node_modules/.bin/azurite-blob', import.meta.url)));

/**
 * A real Azure Blob API (Azurite, a child process) on 127.0.0.1 at a free port, storing in a temp
 * folder. Runs on this Node (the script's `#!/usr/bin/env node` could find another one on PATH).
 */
export async function startAzurite(container = 'goldsnap-test'): Promise<ObjectStore> {
  const dir = await mkdtemp(join(tmpdir(), 'goldsnap-azurite-'));
  let lastError: unknown;
  // The free port is found by binding and releasing it, so another process may take it meanwhile: retry.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const server = watch(
      spawn(
        process.execPath,
        [
          AZURITE_BLOB,
          '--blobHost',
          '127.0.0.1',
          '--blobPort',
          String(port),
          '--location',
          dir,
          '--silent',
          '--skipApiVersionCheck',
          '--loose',
          '--disableTelemetry',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    try {
      await server.waitFor(/successfully listens/, 30_000);
      await waitForPort(port, 10_000);
    } catch (err) {
      await server.stop();
      lastError = err;
      continue;
    }
    return {
      location: `azure:http://127.0.0.1:${port}/${AZURITE_ACCOUNT}/${container}`,
      env: { AZURE_STORAGE_KEY: AZURITE_KEY },
      secret: AZURITE_KEY,
      async stop() {
        await server.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const answers = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (answers) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing answers on port ${port} after ${timeoutMs} ms`);
}
