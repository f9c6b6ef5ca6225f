import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type ControlQueue, regionOfQueue, transferQueueDepths } from '../jobs.ts';
import { errorMessage } from '../../util/errors.ts';

export interface ProxyInfo {
  region: string;
  /** Local proxies: the child process. */
  pid?: number;
  /** Azure Container Instances: the container group's name and its state as Azure reports it. */
  containerGroup?: string;
  state?: string;
  startedAt: string;
}

/**
 * Starts and stops data proxies, one per region with work, each with a credential for that
 * region only. Implementations: local child processes (this file, the default) and Azure
 * Container Instances in the region itself (aci-launcher.ts).
 */
export interface ProxyLauncher {
  readonly kind: 'local' | 'aci';
  /** Things to do once at server start (find and delete what a crash left behind). */
  start?(): Promise<void>;
  /** Starts a proxy for every region with queued or running work and none alive; removes idle ones. */
  reconcile(): Promise<void>;
  list(): ProxyInfo[];
  stopAll(): Promise<void>;
}

/** Issues and revokes the per-region credentials of the proxies a launcher starts. */
export interface LauncherCredentials {
  issue(region: string): Promise<{ id: string; token: string }>;
  revoke(id: string): Promise<void>;
}

export interface LocalProxyLauncherOptions {
  queue: ControlQueue;
  /** Environment for a new proxy: server URL, repository, passphrase, cloud. Never logged. */
  env: () => NodeJS.ProcessEnv;
  /** Per-region credentials (GOLDSNAP_PROXY_TOKEN of each proxy); without them, env() must hold one. */
  credentials?: LauncherCredentials;
  /** Where this server (and so its child proxies) runs, when known: recorded with each transfer. */
  serverRegion?: string;
  idleSeconds: number;
  /** Jobs each proxy runs at once (`goldsnap proxy --jobs`); the proxy's default when absent. */
  jobs?: number;
  bandwidth?: string;
  log: (line: string) => void;
}

const CLI = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));

export class LocalProxyLauncher implements ProxyLauncher {
  readonly kind = 'local';
  private readonly opts: LocalProxyLauncherOptions;
  private readonly children = new Map<string, { child: ChildProcess; info: ProxyInfo }>();
  private readonly launching = new Set<string>();
  /** Regions whose proxy failed: no new one before `until`, doubling the wait on each failure. */
  private readonly backoff = new Map<string, { until: number; waitMs: number }>();

  constructor(opts: LocalProxyLauncherOptions) {
    this.opts = opts;
  }

  async reconcile(): Promise<void> {
    const depths = await transferQueueDepths(this.opts.queue);
    for (const [queue, depth] of Object.entries(depths)) {
      const region = regionOfQueue(queue);
      if (!region || depth.queued + depth.running === 0 || this.children.has(region) || this.launching.has(region))
        continue;
      if ((this.backoff.get(region)?.until ?? 0) > Date.now()) continue;
      this.launching.add(region);
      try {
        const credential = await this.opts.credentials?.issue(region);
        this.launch(region, credential);
      } finally {
        this.launching.delete(region);
      }
    }
  }

  private launch(region: string, credential?: { id: string; token: string }): void {
    const env: NodeJS.ProcessEnv = { ...this.opts.env(), GOLDSNAP_PROXY_LOCATION: this.opts.serverRegion ?? region };
    if (credential) env.GOLDSNAP_PROXY_TOKEN = credential.token;
    const args = [
      '--disable-warning=ExperimentalWarning',
      CLI,
      'proxy',
      '--region',
      region,
      '--idle',
      String(this.opts.idleSeconds),
    ];
    if (this.opts.jobs) args.push('--jobs', String(this.opts.jobs));
    if (this.opts.bandwidth) args.push('--bandwidth', this.opts.bandwidth);
    // The IPC channel ties the proxy to this server: if the server dies, the proxy sees the
    // channel close and exits, and its jobs' leases run out for the next server's proxies.
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const info: ProxyInfo = { region, pid: child.pid ?? 0, startedAt: new Date().toISOString() };
    this.children.set(region, { child, info });
    this.opts.log(`proxy for ${region} started (pid ${info.pid})`);
    const ended = (how: string, failed: boolean) => {
      if (this.children.get(region)?.child !== child) return;
      this.children.delete(region);
      this.opts.log(`proxy for ${region} (pid ${info.pid}) ended: ${how}`);
      // Its credential goes with it: nobody else ever saw the secret.
      if (credential)
        this.opts.credentials
          ?.revoke(credential.id)
          .catch((err) =>
            this.opts.log(`proxy credential ${credential.id.slice(0, 8)}: not revoked: ${errorMessage(err)}`),
          );
      // A proxy that cannot start (repository or cloud unreachable) is not relaunched in a tight loop.
      if (failed) {
        const waitMs = Math.min(60_000, (this.backoff.get(region)?.waitMs ?? 500) * 2);
        this.backoff.set(region, { until: Date.now() + waitMs, waitMs });
      } else {
        this.backoff.delete(region);
      }
    };
    child.on('error', (err) => ended(`could not start: ${err.message}`, true));
    child.on('exit', (code, signal) => ended(signal ?? `exit ${code}`, code !== 0));
  }

  list(): ProxyInfo[] {
    return [...this.children.values()].map((c) => c.info);
  }

  async stopAll(): Promise<void> {
    const exits = [...this.children.values()].map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
  }
}
