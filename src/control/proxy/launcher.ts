import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type ControlQueue, regionOfQueue, transferQueueDepths } from '../jobs.ts';

export interface ProxyInfo {
  region: string;
  pid: number;
  startedAt: string;
}

/** Starts and stops data proxies. This one runs them as local child processes; others could start containers or VMs. */
export interface ProxyLauncher {
  /** Starts a proxy for every region with queued or running work and none alive; idle proxies stop themselves. */
  reconcile(): Promise<void>;
  list(): ProxyInfo[];
  stopAll(): Promise<void>;
}

export interface LocalProxyLauncherOptions {
  queue: ControlQueue;
  /** Environment for a new proxy: server URL, proxy token, repository, passphrase, cloud. Never logged. */
  env: () => NodeJS.ProcessEnv;
  idleSeconds: number;
  bandwidth?: string;
  log: (line: string) => void;
}

const CLI = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));

export class LocalProxyLauncher implements ProxyLauncher {
  private readonly opts: LocalProxyLauncherOptions;
  private readonly children = new Map<string, { child: ChildProcess; info: ProxyInfo }>();
  /** Regions whose proxy failed: no new one before `until`, doubling the wait on each failure. */
  private readonly backoff = new Map<string, { until: number; waitMs: number }>();

  constructor(opts: LocalProxyLauncherOptions) {
    this.opts = opts;
  }

  async reconcile(): Promise<void> {
    const depths = await transferQueueDepths(this.opts.queue);
    for (const [queue, depth] of Object.entries(depths)) {
      const region = regionOfQueue(queue);
      if (!region || depth.queued + depth.running === 0 || this.children.has(region)) continue;
      if ((this.backoff.get(region)?.until ?? 0) > Date.now()) continue;
      this.launch(region);
    }
  }

  private launch(region: string): void {
    const args = ['--disable-warning=ExperimentalWarning', CLI, 'proxy', '--region', region, '--idle', String(this.opts.idleSeconds)];
    if (this.opts.bandwidth) args.push('--bandwidth', this.opts.bandwidth);
    // The IPC channel ties the proxy to this server: if the server dies, the proxy sees the
    // channel close and exits, and its jobs' leases run out for the next server's proxies.
    const child = spawn(process.execPath, args, { env: this.opts.env(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const info: ProxyInfo = { region, pid: child.pid ?? 0, startedAt: new Date().toISOString() };
    this.children.set(region, { child, info });
    this.opts.log(`proxy for ${region} started (pid ${info.pid})`);
    const ended = (how: string, failed: boolean) => {
      if (this.children.get(region)?.child !== child) return;
      this.children.delete(region);
      this.opts.log(`proxy for ${region} (pid ${info.pid}) ended: ${how}`);
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
    const exits = [...this.children.values()].map(({ child }) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }));
    await Promise.all(exits);
  }
}
