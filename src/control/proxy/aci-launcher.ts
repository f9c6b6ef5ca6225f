import type {
  ContainerGroup,
  ContainerInstanceManagementClient,
  EnvironmentVariable,
} from '@azure/arm-containerinstance';
import { GOLDSNAP_TAG } from '../../cloud/cloud.ts';
import { type ControlQueue, regionOfQueue, transferQueueDepths } from '../jobs.ts';
import type { LauncherCredentials, ProxyInfo, ProxyLauncher } from './launcher.ts';
import { errorMessage } from '../../util/errors.ts';

export interface AciLauncherOptions {
  queue: ControlQueue;
  client: ContainerInstanceManagementClient;
  /** The resource group that holds the proxies' container groups (one launcher per group). */
  resourceGroup: string;
  /** The Goldsnap proxy image (Dockerfile at the repository's root), e.g. myregistry.azurecr.io/goldsnap-proxy:0.1.0. */
  image: string;
  cpu: number;
  memoryInGB: number;
  /** Delete a region's container group after this long without work. */
  idleSeconds: number;
  /** Jobs each proxy runs at once (`goldsnap proxy --jobs`); the proxy's default when absent. */
  jobs?: number;
  bandwidth?: string;
  /** Environment the proxy needs that is no secret (which cloud, subscription). */
  env: () => Record<string, string>;
  /** Secrets the proxy needs: server URL, repository location and passphrase, storage keys. Passed as secure values. */
  secureEnv: () => Record<string, string>;
  credentials: LauncherCredentials;
  /** A user-assigned managed identity for the containers (their access to the disks' snapshots). */
  identity?: string;
  /** Registry login for a private image. */
  registry?: { server: string; username: string; password: string };
  /** How often the containers' state is asked from Azure (ms). */
  pollMs: number;
  /** ARM long-running operations: poll interval (the emulator answers in milliseconds). */
  lroPollMs?: number;
  log: (line: string) => void;
}

/** Tag on every container group Goldsnap makes (besides goldsnap=true): the region it serves. */
export const PROXY_REGION_TAG = 'goldsnapProxy';
const CREDENTIAL_TAG = 'goldsnapCredential';

interface Tracked {
  name: string;
  credentialId: string;
  startedAt: string;
  state: string;
  /** When the region's queue was last seen empty with nothing running; undefined while busy. */
  idleSince?: number;
  checkedAt: number;
}

export function containerGroupName(region: string): string {
  return `goldsnap-proxy-${region}`.toLowerCase().slice(0, 63);
}

/**
 * Data proxies in Azure Container Instances: for each region with work, a container group in that
 * region running the proxy image, its server URL, region credential, repository and passphrase
 * given as secure environment variables. A group is deleted (and its credential revoked) once its
 * region has been idle for `idleSeconds`, or when its container has ended (the proxy stops by
 * itself after the same idle time, so a server that died leaves no proxy running for long). Groups
 * carry Goldsnap's tags, so that at start the server finds and deletes those a crash left behind.
 */
export class AciProxyLauncher implements ProxyLauncher {
  readonly kind = 'aci';
  private readonly opts: AciLauncherOptions;
  private readonly groups = new Map<string, Tracked>();
  private readonly backoff = new Map<string, { until: number; waitMs: number }>();
  private reconciling?: Promise<void>;

  constructor(opts: AciLauncherOptions) {
    this.opts = opts;
  }

  private get lro() {
    return { updateIntervalInMs: this.opts.lroPollMs ?? 2000 };
  }

  /** Deletes the proxies' container groups a crash left behind (found by tag), and revokes their credentials. */
  async start(): Promise<void> {
    for await (const group of this.opts.client.containerGroups.listByResourceGroup(this.opts.resourceGroup)) {
      if (group.tags?.[GOLDSNAP_TAG] !== 'true' || !group.tags[PROXY_REGION_TAG] || !group.name) continue;
      if ([...this.groups.values()].some((t) => t.name === group.name)) continue;
      await this.delete(group.name, group.tags[CREDENTIAL_TAG]);
      this.opts.log(
        `proxy container group ${group.name} (${group.location}) was left behind by an earlier server: deleted`,
      );
    }
  }

  /** One pass at a time: the server calls this every half second, ARM calls take longer. */
  reconcile(): Promise<void> {
    this.reconciling ??= this.reconcileOnce().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<void> {
    const depths = await transferQueueDepths(this.opts.queue);
    const now = Date.now();
    const busy = new Set(
      Object.entries(depths)
        .filter(([, d]) => d.queued + d.running > 0)
        .flatMap(([q]) => regionOfQueue(q) ?? []),
    );
    // Regions are launched side by side: a container group can take a minute to start on Azure.
    const wanted = [...busy].filter(
      (region) => !this.groups.has(region) && (this.backoff.get(region)?.until ?? 0) <= now,
    );
    await Promise.all(
      wanted.map((region) =>
        this.create(region).catch((err) => {
          this.opts.log(`proxy for ${region}: container group not created: ${errorMessage(err)}`);
          this.fail(region);
        }),
      ),
    );
    for (const [region, t] of this.groups) {
      if (busy.has(region)) t.idleSince = undefined;
      else t.idleSince ??= now;
      if (t.idleSince !== undefined && now - t.idleSince >= this.opts.idleSeconds * 1000) {
        await this.remove(region, t, `idle for ${this.opts.idleSeconds} s`, false);
        continue;
      }
      if (now - t.checkedAt < this.opts.pollMs) continue;
      t.checkedAt = now;
      const group = await this.opts.client.containerGroups
        .get(this.opts.resourceGroup, t.name)
        .catch((err: { statusCode?: number }) => {
          if (err.statusCode === 404) return undefined;
          throw err;
        });
      if (!group) {
        this.groups.delete(region);
        await this.opts.credentials.revoke(t.credentialId);
        this.opts.log(`proxy container group ${t.name} is gone (deleted outside Goldsnap)`);
        continue;
      }
      const container = group.containers[0]?.instanceView?.currentState;
      t.state = group.instanceView?.state ?? group.provisioningState ?? 'Unknown';
      if (group.provisioningState === 'Failed' || container?.state === 'Terminated') {
        const code = container?.exitCode;
        await this.remove(
          region,
          t,
          `container ${container?.state ?? 'failed'}${code === undefined ? '' : `, exit ${code}`}${container?.detailStatus ? ` (${container.detailStatus})` : ''}`,
          code !== 0,
        );
      }
    }
  }

  private async create(region: string): Promise<void> {
    const name = containerGroupName(region);
    const credential = await this.opts.credentials.issue(region);
    const secure: Record<string, string> = { ...this.opts.secureEnv(), GOLDSNAP_PROXY_TOKEN: credential.token };
    const plain: Record<string, string> = { ...this.opts.env(), GOLDSNAP_PROXY_LOCATION: region };
    const environmentVariables: EnvironmentVariable[] = [
      ...Object.entries(plain).map(([k, value]) => ({ name: k, value })),
      ...Object.entries(secure).map(([k, secureValue]) => ({ name: k, secureValue })),
    ];
    const command = ['goldsnap', 'proxy', '--region', region, '--idle', String(this.opts.idleSeconds)];
    if (this.opts.jobs) command.push('--jobs', String(this.opts.jobs));
    if (this.opts.bandwidth) command.push('--bandwidth', this.opts.bandwidth);
    const group: ContainerGroup = {
      location: region,
      tags: { [GOLDSNAP_TAG]: 'true', [PROXY_REGION_TAG]: region, [CREDENTIAL_TAG]: credential.id },
      osType: 'Linux',
      restartPolicy: 'Never',
      sku: 'Standard',
      containers: [
        {
          name: 'proxy',
          image: this.opts.image,
          command,
          environmentVariables,
          resources: { requests: { cpu: this.opts.cpu, memoryInGB: this.opts.memoryInGB } },
        },
      ],
      ...(this.opts.identity
        ? { identity: { type: 'UserAssigned', userAssignedIdentities: { [this.opts.identity]: {} } } }
        : {}),
      ...(this.opts.registry ? { imageRegistryCredentials: [this.opts.registry] } : {}),
    };
    // Tracked before the call returns, so that a crash between the two still finds it by tag.
    const tracked: Tracked = {
      name,
      credentialId: credential.id,
      startedAt: new Date().toISOString(),
      state: 'Pending',
      checkedAt: Date.now(),
    };
    this.groups.set(region, tracked);
    try {
      const made = await this.opts.client.containerGroups.beginCreateOrUpdateAndWait(
        this.opts.resourceGroup,
        name,
        group,
        this.lro,
      );
      tracked.state = made.instanceView?.state ?? made.provisioningState ?? 'Pending';
    } catch (err) {
      this.groups.delete(region);
      await this.delete(name, credential.id).catch(() => undefined);
      throw err;
    }
    this.opts.log(
      `proxy for ${region} started: container group ${name} in ${region} (${this.opts.cpu} CPU, ${this.opts.memoryInGB} GB)`,
    );
  }

  private async remove(region: string, t: Tracked, why: string, failed: boolean): Promise<void> {
    this.groups.delete(region);
    await this.delete(t.name, t.credentialId);
    this.opts.log(`proxy for ${region} (container group ${t.name}) ended: ${why}; deleted`);
    if (failed) this.fail(region);
    else this.backoff.delete(region);
  }

  /** A region whose proxy failed gets no new one for a while, doubling the wait each time. */
  private fail(region: string): void {
    const waitMs = Math.min(60_000, (this.backoff.get(region)?.waitMs ?? 500) * 2);
    this.backoff.set(region, { until: Date.now() + waitMs, waitMs });
  }

  private async delete(name: string, credentialId?: string): Promise<void> {
    await this.opts.client.containerGroups.beginDeleteAndWait(this.opts.resourceGroup, name, this.lro);
    if (credentialId) await this.opts.credentials.revoke(credentialId);
  }

  list(): ProxyInfo[] {
    return [...this.groups.entries()].map(([region, t]) => ({
      region,
      containerGroup: t.name,
      state: t.state,
      startedAt: t.startedAt,
    }));
  }

  /** A server that stops cleanly removes its proxies. */
  async stopAll(): Promise<void> {
    await this.reconciling?.catch(() => undefined);
    for (const [region, t] of [...this.groups]) {
      await this.remove(region, t, 'the server stopped', false).catch((err) =>
        this.opts.log(`proxy container group ${t.name}: not deleted: ${errorMessage(err)}`),
      );
    }
  }
}
