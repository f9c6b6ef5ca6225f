import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Cloud } from '../../cloud/cloud.ts';
import { openCloud } from '../../cloud/open-cloud.ts';
import { openBackend } from '../../repository/backend/open.ts';
import { Repository } from '../../repository/repository.ts';
import { Alerter } from '../alerts/alerter.ts';
import { mailSettingsFromEnv } from '../alerts/senders.ts';
import { buildApi } from '../api/api.ts';
import { openDatabase, redactUrl, type Database } from '../catalog/database.ts';
import { migrate } from '../catalog/migrations.ts';
import { PolicyStore } from '../catalog/policies.ts';
import { importFromRepository } from '../catalog/rebuild.ts';
import { SqlRunStore } from '../catalog/run-store.ts';
import { TokenStore } from '../catalog/tokens.ts';
import { SecretBox } from '../catalog/secret-box.ts';
import { checkSettingsFromEnv, RepositoryChecker } from '../checks/repository-checker.ts';
import { Orchestrator } from '../orchestrator/orchestrator.ts';
import { startProxyLauncher } from '../proxy/start-launcher.ts';
import { type JobPayloads, regionOfQueue } from '../jobs.ts';
import { JobQueue } from '../queue/job-queue.ts';
import { Scheduler } from '../scheduler/scheduler.ts';
import { errorMessage } from '../../util/errors.ts';

export interface ServerOptions {
  dataDir: string;
  host: string;
  port: number;
  /** PostgreSQL server for catalog and queue; default: embedded PGlite in the data folder. */
  databaseUrl?: string;
  /** Repository location; default: <data>/repository. */
  repository?: string;
  /** Repository passphrase; default for the embedded setup: one generated into <data>/secrets. */
  passphrase?: string;
  /** Azure subscription; without it Goldsnap runs the emulator in this process. */
  azureSubscriptionId?: string;
  /** More Azure subscriptions to back up and restore to (AZURE_SUBSCRIPTION_IDS). */
  azureSubscriptionIds?: string[];
  /** Connection file of an emulator running elsewhere (`goldsnap emulator`), instead of hosting one. */
  emulatorConnectionFile?: string;
  /** Seed the emulator with demo VMs and a demo policy on first start. */
  demo: boolean;
  /** How many subscriptions the hosted emulator has (default 1). */
  emulatorSubscriptions?: number;
  /** Fault profile of the hosted emulator (`--faults`, src/emulator/faults.ts). */
  emulatorFaults?: string;
  proxyIdleSeconds: number;
  /** Jobs each data proxy runs at once (the proxy's default when absent). */
  proxyJobs?: number;
  proxyBandwidth?: string;
  /** `local` child processes (default) or `aci` (Azure Container Instances), see proxy/launcher-config.ts. */
  proxyLauncher?: string;
  /** The region this server runs in, if known: local proxies run there (cross-region reads are flagged). */
  serverRegion?: string;
  schedulerIntervalMs: number;
  log: (line: string) => void;
  /** Structured logger: the API logs each request through it (--log-format json). */
  logger?: Logger;
}

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

/**
 * `goldsnap server`: catalog and queue (PGlite or PostgreSQL), repository, cloud (Azure or the
 * emulator), scheduler, orchestrator, proxy launcher and the REST API, in one process. Everything
 * durable is in the catalog and the repository, so it may be killed at any instant.
 */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const dataDir = resolve(opts.dataDir);
  await mkdir(dataDir, { recursive: true });
  const log = opts.log;
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch((err) => log(`shutdown: ${errorMessage(err)}`));
  };
  try {
    // The cloud: real Azure, or the emulator hosted here (its state persists in <data>/emulator).
    let cloud: Cloud;
    const cloudEnv: NodeJS.ProcessEnv = {};
    if (opts.azureSubscriptionId) {
      cloud = await openCloud({
        kind: 'azure',
        subscriptionId: opts.azureSubscriptionId,
        subscriptionIds: opts.azureSubscriptionIds,
      });
      cloudEnv.GOLDSNAP_CLOUD = 'azure';
      cloudEnv.AZURE_SUBSCRIPTION_ID = opts.azureSubscriptionId;
      if (opts.azureSubscriptionIds?.length) cloudEnv.AZURE_SUBSCRIPTION_IDS = opts.azureSubscriptionIds.join(',');
    } else if (opts.emulatorConnectionFile) {
      cloud = await openCloud({ kind: 'emulator', connectionFile: opts.emulatorConnectionFile });
      cloudEnv.GOLDSNAP_CLOUD = 'emulator';
      cloudEnv.GOLDSNAP_EMULATOR = opts.emulatorConnectionFile;
      log(`emulator: the one of ${opts.emulatorConnectionFile}`);
    } else {
      const { startEmulator } = await import('../../emulator/emulator.ts');
      const emulator = await startEmulator({
        dataDir: join(dataDir, 'emulator'),
        port: 0,
        ...(opts.emulatorFaults ? { faults: opts.emulatorFaults } : {}),
        ...(opts.emulatorSubscriptions ? { subscriptions: opts.emulatorSubscriptions } : {}),
      });
      if (emulator.faults) log(`emulator: fault profile ${JSON.stringify(emulator.faults.profile)}`);
      closers.push(() => emulator.close());
      if (opts.demo && emulator.control.listVms().length === 0) {
        log('emulator: creating the demo VMs (once)');
        await emulator.control.seedDemo();
      }
      // Demo VMs keep writing a little, so every next backup has changed blocks to find.
      if (opts.demo) emulator.control.startTicker({ intervalMs: 60_000, fraction: 0.002 });
      log(`emulator: ${emulator.armEndpoint} (${emulator.control.listVms().length} VMs)`);
      cloud = await openCloud({ kind: 'emulator', connectionFile: emulator.connectionFile });
      cloudEnv.GOLDSNAP_CLOUD = 'emulator';
      cloudEnv.GOLDSNAP_EMULATOR = emulator.connectionFile;
    }
    // Read grants left open by proxies that died with an earlier server: they would block deletes
    // and count against Azure's 5 SAS per snapshot family. A live proxy whose grant this revokes renews it.
    const swept = await cloud.releaseLeftoverAccess?.().catch((err: unknown) => {
      log(`could not release leftover snapshot access: ${errorMessage(err)}`);
      return 0;
    });
    if (swept) log(`released ${swept} snapshot access grant(s) left open by an earlier run`);

    const db: Database = await openDatabase(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : { dataDir });
    closers.push(() => db.close());
    await migrate(db);
    log(`catalog: ${opts.databaseUrl ? redactUrl(opts.databaseUrl) : `PGlite in ${join(dataDir, 'catalog')}`}`);

    const location = opts.repository ?? join(dataDir, 'repository');
    const passphrase = opts.passphrase ?? (await embeddedPassphrase(dataDir, log));
    const repo = await openOrInitRepository(location, passphrase, log);

    const queue = new JobQueue<JobPayloads>(db);
    const runs = new SqlRunStore(db, queue);
    const policies = new PolicyStore(db);
    const tokens = new TokenStore(db);
    await bootstrapAdminToken(tokens, dataDir, log);

    const orchestrator = new Orchestrator({ runs, policies, queue, cloud, repo, log });
    const scheduler = new Scheduler({ db, queue, log });
    let url = '';
    const { launcher, credentials, legacyProxyToken } = await startProxyLauncher({
      db,
      queue,
      log,
      config: opts.proxyLauncher ?? 'local',
      idleSeconds: opts.proxyIdleSeconds,
      ...(opts.proxyJobs ? { jobs: opts.proxyJobs } : {}),
      bandwidth: opts.proxyBandwidth,
      serverRegion: opts.serverRegion,
      cloudEnv,
      serverUrl: () => url,
      repository: location,
      passphrase,
      emulatorConnectionFile: cloudEnv.GOLDSNAP_CLOUD === 'emulator' ? cloudEnv.GOLDSNAP_EMULATOR : undefined,
      azureSubscriptionId: opts.azureSubscriptionId,
      localEnv: () => ({
        ...process.env,
        ...cloudEnv,
        GOLDSNAP_SERVER_URL: url,
        GOLDSNAP_REPOSITORY: location,
        GOLDSNAP_PASSWORD: passphrase,
      }),
    });
    const alerter = new Alerter({
      db,
      runs,
      policies,
      mail: mailSettingsFromEnv(),
      secrets: SecretBox.fromMasterKey(repo.key),
      log,
      scheduleGraceMs: envNumber('GOLDSNAP_ALERT_SCHEDULE_GRACE_MS'),
      retryMs: envNumber('GOLDSNAP_ALERT_RETRY_MS'),
    });
    const checker = new RepositoryChecker({ db, repo, alerts: alerter.store, settings: checkSettingsFromEnv(), log });
    const api = await buildApi({
      runs,
      policies,
      tokens,
      queue,
      orchestrator,
      scheduler,
      launcher,
      proxyToken: legacyProxyToken,
      proxyCredentials: credentials,
      alerter,
      checker,
      repo,
      cloud,
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    await api.listen({ host: opts.host, port: opts.port });
    const address = api.server.address();
    url = `http://${opts.host}:${typeof address === 'object' && address ? address.port : opts.port}`;
    closers.push(() => api.close());
    closers.push(() => launcher.stopAll());
    await launcher.start?.().catch((err) => log(`proxy launcher: ${errorMessage(err)}`));

    await orchestrator.refreshInventory().catch((err) => log(`inventory: ${errorMessage(err)}`));
    await importFromRepository(repo, runs, cloud, log);
    // Hourly housekeeping: snapshots finished runs left behind, and jobs finished over 30 days ago.
    const sweep = async () => {
      await orchestrator.sweepLeakedSnapshots().catch((err) => log(`snapshot sweep: ${errorMessage(err)}`));
      await runs
        .purgeJobs(new Date(Date.now() - 30 * 86_400_000))
        .catch((err) => log(`job purge: ${errorMessage(err)}`));
    };
    await sweep();
    const sweeper = setInterval(() => void sweep(), 3600_000);
    closers.push(async () => clearInterval(sweeper));
    if (opts.demo && (await policies.list()).length === 0) {
      const policy = await policies.create({
        name: 'demo-hourly',
        cron: '0 * * * *',
        timeZone: 'UTC',
        selection: { resourceGroups: ['rg-prod-weu', 'rg-dev-eus'] },
        retention: { last: 3, daily: 7, weekly: 4 },
      });
      log(`demo: created policy ${policy.name}; starting its first run now`);
      await orchestrator.firePolicy(policy.id, new Date().toISOString());
    }

    orchestrator.start(envNumber('GOLDSNAP_ORCHESTRATOR_POLL_MS'));
    closers.push(() => orchestrator.stop());
    scheduler.start(opts.schedulerIntervalMs);
    closers.push(() => scheduler.stop());
    alerter.start(envNumber('GOLDSNAP_ALERT_INTERVAL_MS') ?? 30_000);
    closers.push(() => alerter.stop());
    checker.start();
    closers.push(() => checker.stop());
    // Proxies start when a transfer or restore is queued (notified by the catalog, from any
    // server), and every few seconds anyway: a proxy that quit just as work came, a back-off over.
    const reconcile = coalesced(() => launcher.reconcile().catch((err) => log(`proxy launcher: ${errorMessage(err)}`)));
    const unlisten = await queue
      .onChange((change) => {
        if (!change || (change.state === 'queued' && regionOfQueue(change.queue) !== undefined)) reconcile();
      })
      .catch((err) => log(`proxy launcher: cannot listen for queued work, polling only: ${errorMessage(err)}`));
    if (unlisten) closers.push(unlisten);
    const reconciler = setInterval(reconcile, envNumber('GOLDSNAP_LAUNCHER_POLL_MS') ?? 5000);
    closers.push(async () => clearInterval(reconciler));
    reconcile();

    await writeFile(join(dataDir, 'server.json'), `${JSON.stringify({ url, pid: process.pid })}\n`);
    closers.push(() => rm(join(dataDir, 'server.json'), { force: true }));
    return { url, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** `fn` run now, or once more after the run under way if one is: never two at once, no call lost. */
function coalesced(fn: () => Promise<void>): () => void {
  let running = false;
  let again = false;
  const run = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    void fn().finally(() => {
      running = false;
      if (again) {
        again = false;
        run();
      }
    });
  };
  return run;
}

/** A number from the environment (tuning knobs tests turn down), or undefined when unset. */
function envNumber(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${value}: expected a number of milliseconds`);
  return n;
}

async function openOrInitRepository(
  location: string,
  passphrase: string,
  log: (line: string) => void,
): Promise<Repository> {
  const backend = openBackend(location);
  if (await backend.stat('config')) return Repository.open(backend, passphrase);
  log(`repository: creating a new one at ${backend.location}`);
  await backend.create();
  return Repository.init(backend, passphrase);
}

/**
 * With no passphrase given, the embedded first-look setup makes one and keeps it in
 * <data>/secrets (mode 0600). Production sets GOLDSNAP_PASSWORD(_FILE) and keeps it elsewhere.
 */
async function embeddedPassphrase(dataDir: string, log: (line: string) => void): Promise<string> {
  const path = join(dataDir, 'secrets', 'repository-passphrase');
  if (existsSync(path)) return (await readFile(path, 'utf8')).trim();
  await mkdir(join(dataDir, 'secrets'), { recursive: true, mode: 0o700 });
  await writeFile(path, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  log(
    `repository passphrase: generated into ${path} (set GOLDSNAP_PASSWORD_FILE to keep your own elsewhere; without it the repository cannot be read)`,
  );
  return (await readFile(path, 'utf8')).trim();
}

/** The first start makes an admin token and writes it to <data>/admin-token (0600), never to the log. */
async function bootstrapAdminToken(tokens: TokenStore, dataDir: string, log: (line: string) => void): Promise<void> {
  if ((await tokens.count()) > 0) return;
  const { token } = await tokens.create('admin', 'admin');
  const path = join(dataDir, 'admin-token');
  await writeFile(path, `${token}\n`, { mode: 0o600 });
  log(`API: admin token written to ${path}`);
}
