import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openCloud } from '../../src/cloud/open-cloud.ts';
import type { Cloud } from '../../src/cloud/cloud.ts';
import { GOLDSNAP_BIN, goldsnap, type CliResult } from './goldsnap-cli.ts';
import { seedPGliteCatalog } from './pglite-template.ts';

export const MiB = 1024 * 1024;

/**
 * `--liftoff-only` (given to Node by bin/goldsnap through GOLDSNAP_NODE_FLAGS): WebAssembly runs on
 * V8's baseline compiler only, never tiered up to TurboFan. A test server is short-lived, and
 * tiering PGlite's large wasm module up cost about 3 s of CPU per server start (most of what
 * PGlite's start-up costs) for queries that are then barely faster. It changes how the code is
 * compiled, not what it does.
 */
const SERVER_NODE_FLAGS = '--liftoff-only';

/**
 * A `goldsnap server` process with its own data folder (and, for `postgres`, its own database on
 * the local PostgreSQL), driven the way a user drives it: the CLI, the REST API, and the emulator's
 * control API standing in for the VMs' own writes.
 */
export class ServerUnderTest {
  readonly dataDir: string;
  readonly env: NodeJS.ProcessEnv;
  private child?: ChildProcess;
  private exited?: Promise<void>;
  log = '';
  url = '';
  private readonly dropDatabase?: () => Promise<void>;

  private constructor(dataDir: string, env: NodeJS.ProcessEnv, dropDatabase?: () => Promise<void>) {
    this.dataDir = dataDir;
    this.env = env;
    this.dropDatabase = dropDatabase;
  }

  static async create(opts: { catalog: 'pglite' | 'postgres'; env?: NodeJS.ProcessEnv }): Promise<ServerUnderTest> {
    const dataDir = await mkdtemp(join(tmpdir(), 'gs-server-'));
    const env: NodeJS.ProcessEnv = { GOLDSNAP_PROXY_LEASE_MS: '3000', GOLDSNAP_RUN_LEASE_MS: '3000', ...opts.env };
    if (opts.catalog === 'postgres') {
      const admin = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
      const name = `goldsnap_e2e_${randomBytes(4).toString('hex')}`;
      const client = new pg.Client({ connectionString: admin });
      await client.connect();
      await client.query(`CREATE DATABASE ${name}`);
      await client.end();
      const url = new URL(admin);
      url.pathname = `/${name}`;
      env.DATABASE_URL = url.toString();
      return new ServerUnderTest(dataDir, env, async () => {
        const c = new pg.Client({ connectionString: admin });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      });
    }
    await seedPGliteCatalog(join(dataDir, 'catalog'));
    return new ServerUnderTest(dataDir, env);
  }

  /** Starts the server and waits until its API answers. */
  async start(args: string[] = []): Promise<void> {
    this.url = '';
    const from = this.log.length;
    const child = spawn(GOLDSNAP_BIN, ['server', '--data', this.dataDir, '--port', '0', '--proxy-idle', '3', ...args], {
      env: {
        ...process.env,
        GOLDSNAP_NODE_FLAGS: SERVER_NODE_FLAGS,
        DATABASE_URL: '',
        GOLDSNAP_PASSWORD: undefined,
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const onData = (d: Buffer) => {
      this.log += d.toString();
      if (process.env.GOLDSNAP_TEST_VERBOSE) process.stderr.write(d);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    // No deadline of its own: a loaded machine may take long to start it; the test's timeout governs.
    for (;;) {
      const m = /listening on (http:[^\s"]+)/.exec(this.log.slice(from));
      if (m) {
        this.url = m[1];
        return;
      }
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`goldsnap server exited at start:\n${this.log}`);
      await sleep(100);
    }
  }

  get pid(): number {
    return this.child!.pid!;
  }

  /** Kills the server with SIGKILL, as a crash would. */
  async kill9(): Promise<void> {
    this.child!.kill('SIGKILL');
    await this.exited;
    this.log += '\n--- killed -9 ---\n';
  }

  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      await this.exited;
    }
  }

  async dispose(): Promise<void> {
    await this.stop();
    await this.dropDatabase?.();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  /** Runs the goldsnap CLI against this server. */
  cli(args: string[]): Promise<CliResult> {
    return goldsnap(args, { GOLDSNAP_DATA: this.dataDir, GOLDSNAP_SERVER: this.url });
  }

  async cliJson<T = any>(args: string[]): Promise<T> {
    const r = await this.cli([...args, '--json']);
    if (r.code !== 0)
      throw new Error(
        `goldsnap ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n--- server log ---\n${this.log.slice(-4000)}`,
      );
    return JSON.parse(r.stdout) as T;
  }

  get adminToken(): string {
    return readFileSync(join(this.dataDir, 'admin-token'), 'utf8').trim();
  }

  async api(
    method: string,
    path: string,
    body?: unknown,
    token = this.adminToken,
  ): Promise<{ status: number; body: any }> {
    const res = await fetch(new URL(path, this.url), {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  private get connectionFile(): string {
    return join(this.dataDir, 'emulator', 'connection.json');
  }

  /** The cloud as the server sees it (through the emulator's connection file). */
  cloud(): Promise<Cloud> {
    if (!existsSync(this.connectionFile)) throw new Error('the emulator has not started');
    return openCloud({ kind: 'emulator', connectionFile: this.connectionFile });
  }

  /** Calls the emulator's control API (what the VMs themselves do: write to their disks). */
  emulator(method: string, path: string, body?: unknown): Promise<Buffer> {
    const info = JSON.parse(readFileSync(this.connectionFile, 'utf8')) as {
      armEndpoint: string;
      token: string;
      caCertPem: string;
    };
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(`/_emulator/${path}`, info.armEndpoint),
        {
          method,
          ca: info.caCertPem,
          headers: { authorization: `Bearer ${info.token}`, 'content-type': 'application/json' },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => {
            const all = Buffer.concat(parts);
            if ((res.statusCode ?? 500) >= 300)
              reject(new Error(`emulator ${method} ${path}: ${res.statusCode} ${all.toString().slice(0, 300)}`));
            else resolve(all);
          });
        },
      );
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  async createVm(
    spec: unknown,
  ): Promise<{ id: string; name: string; disks: Array<{ id: string; name: string; sizeBytes: number }> }> {
    return JSON.parse((await this.emulator('POST', 'vms', spec)).toString());
  }

  async diskContent(id: string): Promise<Buffer> {
    return this.emulator('GET', `disk-content?id=${encodeURIComponent(id)}`);
  }

  async writeToVm(
    vm: string,
    writes: Array<{ diskName: string; offset: number; length: number; pattern: 'random' | 'zeros' | number }>,
  ): Promise<void> {
    await this.emulator('POST', `vms/${encodeURIComponent(vm)}/writes`, { writes });
  }

  /** Polls until `check` returns a value (not undefined), or fails with the server log. */
  /** Polls `check` until it gives a value; the deadline only turns a hang into a message with the log. */
  async waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 300_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await check();
      if (value !== undefined) return value;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}\n--- server log ---\n${this.log.slice(-4000)}`);
      await sleep(200);
    }
  }

  /** Waits for run `runId` to end, succeeded or failed, and gives it as the API shows it. */
  async runEnded<R extends { step: string }>(runId: string, timeoutMs = 300_000): Promise<R> {
    const deadline = Date.now() + timeoutMs;
    let r = (await this.api('GET', `/api/runs/${runId}`)).body as R;
    // Each answer comes when the run leaves the step it was at (the API's long poll).
    while (r.step !== 'succeeded' && r.step !== 'failed') {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for run ${runId} to end\n--- server log ---\n${this.log.slice(-4000)}`);
      r = (await this.api('GET', `/api/runs/${runId}?waitMs=10000&step=${r.step}`)).body as R;
    }
    return r;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
