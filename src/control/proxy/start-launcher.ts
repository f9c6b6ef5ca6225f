import { hostname } from 'node:os';
import type { Database } from '../catalog/database.ts';
import { ProxyCredentialStore } from '../catalog/proxy-credentials.ts';
import type { ControlQueue } from '../jobs.ts';
import { AciProxyLauncher } from './aci-launcher.ts';
import { launcherConfigFromEnv } from './launcher-config.ts';
import { LocalProxyLauncher, type LauncherCredentials, type ProxyLauncher } from './launcher.ts';

export interface StartLauncherOptions {
  db: Database;
  queue: ControlQueue;
  log: (line: string) => void;
  /** `local` or `aci`. */
  config: string;
  idleSeconds: number;
  /** Jobs each proxy runs at once (`goldsnap server --proxy-jobs`). */
  jobs?: number;
  bandwidth?: string;
  serverRegion?: string;
  /** Which cloud proxies work on (GOLDSNAP_CLOUD, AZURE_SUBSCRIPTION_ID or GOLDSNAP_EMULATOR). */
  cloudEnv: NodeJS.ProcessEnv;
  serverUrl: () => string;
  repository: string;
  passphrase: string;
  emulatorConnectionFile?: string;
  azureSubscriptionId?: string;
  /** The whole environment of a local proxy (it runs beside the server). */
  localEnv: () => NodeJS.ProcessEnv;
}

/** Secrets a proxy in a container may need to reach the repository, when the server has them. */
const STORAGE_SECRETS = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_REGION',
  'AZURE_STORAGE_CONNECTION_STRING',
];

/**
 * Builds the server's proxy launcher and the per-region credentials its proxies present.
 * Credentials a launcher issued are revoked when its proxy ends; those of a server on this host
 * that died (its pid gone) are revoked here, at the next start.
 */
export async function startProxyLauncher(
  o: StartLauncherOptions,
): Promise<{ launcher: ProxyLauncher; credentials: ProxyCredentialStore; legacyProxyToken?: string }> {
  const config = launcherConfigFromEnv(o.config);
  const credentials = new ProxyCredentialStore(o.db);
  const issuer = `launcher:${hostname()}:${process.pid}`;
  for (const stale of await credentials.liveIssuers(`launcher:${hostname()}:`)) {
    const pid = Number(stale.split(':').pop());
    if (pid !== process.pid && processAlive(pid)) continue;
    const n = await credentials.revokeIssuedBy(stale);
    o.log(`proxy credentials: revoked ${n} left by a server that stopped without revoking them`);
  }
  const issue: LauncherCredentials = {
    issue: async (region) => {
      const made = await credentials.create(region, `${config.kind} proxy ${region}`, issuer);
      return { id: made.credential.id, token: made.token };
    },
    revoke: async (id) => {
      await credentials.revoke(id);
    },
  };
  const legacyProxyToken = process.env.GOLDSNAP_PROXY_TOKEN || undefined;
  if (legacyProxyToken) {
    o.log(
      'GOLDSNAP_PROXY_TOKEN is set: proxies presenting it may claim work of any region (deprecated); give each remote proxy its own credential (goldsnap proxies credentials create --region <region>) and unset it',
    );
  }

  if (config.kind === 'local') {
    const launcher = new LocalProxyLauncher({
      queue: o.queue,
      idleSeconds: o.idleSeconds,
      ...(o.jobs ? { jobs: o.jobs } : {}),
      bandwidth: o.bandwidth,
      log: o.log,
      credentials: issue,
      env: o.localEnv,
      ...(o.serverRegion ? { serverRegion: o.serverRegion } : {}),
    });
    return { launcher, credentials, legacyProxyToken };
  }

  const { ContainerInstanceManagementClient } = await import('@azure/arm-containerinstance');
  let client;
  if (o.emulatorConnectionFile) {
    const { emulatorClientOptions, readConnectionInfo } = await import('../../emulator/client.ts');
    const e = emulatorClientOptions(readConnectionInfo(o.emulatorConnectionFile));
    client = new ContainerInstanceManagementClient(e.credential, e.subscriptionId, e.compute);
  } else if (o.azureSubscriptionId) {
    // Containers in Azure cannot reach a server on this machine's loopback address.
    if (!config.publicUrl)
      throw new Error(
        'the aci proxy launcher needs GOLDSNAP_PUBLIC_URL: the URL by which containers in Azure reach this server (e.g. https://goldsnap.example.com)',
      );
    if (!config.identity)
      o.log(
        'GOLDSNAP_ACI_IDENTITY is not set: the proxy containers get no managed identity, so they cannot read snapshots unless their environment carries other Azure credentials',
      );
    const { DefaultAzureCredential } = await import('@azure/identity');
    client = new ContainerInstanceManagementClient(new DefaultAzureCredential(), o.azureSubscriptionId);
  } else {
    throw new Error('the aci proxy launcher needs Azure (AZURE_SUBSCRIPTION_ID) or the emulator');
  }
  const plain: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.cloudEnv)) if (v !== undefined) plain[k] = v;
  if (process.env.GOLDSNAP_PROXY_LEASE_MS) plain.GOLDSNAP_PROXY_LEASE_MS = process.env.GOLDSNAP_PROXY_LEASE_MS;
  // A user-assigned identity is found by DefaultAzureCredential through its client id.
  if (process.env.GOLDSNAP_ACI_IDENTITY_CLIENT_ID) plain.AZURE_CLIENT_ID = process.env.GOLDSNAP_ACI_IDENTITY_CLIENT_ID;
  const launcher = new AciProxyLauncher({
    queue: o.queue,
    client,
    resourceGroup: config.resourceGroup,
    image: config.image,
    cpu: config.cpu,
    memoryInGB: config.memoryInGB,
    idleSeconds: o.idleSeconds,
    ...(o.jobs ? { jobs: o.jobs } : {}),
    bandwidth: o.bandwidth,
    credentials: issue,
    pollMs: config.pollMs,
    log: o.log,
    lroPollMs: o.emulatorConnectionFile ? 50 : 2000,
    ...(config.identity ? { identity: config.identity } : {}),
    ...(config.registry ? { registry: config.registry } : {}),
    env: () => plain,
    secureEnv: () => {
      const secrets: Record<string, string> = {
        GOLDSNAP_SERVER_URL: config.publicUrl ?? o.serverUrl(),
        GOLDSNAP_REPOSITORY: o.repository,
        GOLDSNAP_PASSWORD: o.passphrase,
      };
      for (const k of STORAGE_SECRETS) if (process.env[k]) secrets[k] = process.env[k];
      return secrets;
    },
  });
  o.log(
    `data proxies: Azure Container Instances, image ${config.image}, ${config.cpu} CPU / ${config.memoryInGB} GB, in resource group ${config.resourceGroup}`,
  );
  return { launcher, credentials, legacyProxyToken };
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
