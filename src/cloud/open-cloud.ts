import { AzureCloud } from './azure.ts';
import type { Cloud } from './cloud.ts';
import { MultiSubscriptionCloud } from './multi-subscription.ts';

/**
 * Which cloud Goldsnap works on: the emulator (by its connection file, written when it starts) or
 * real Azure (credentials from @azure/identity's default chain: environment, managed identity,
 * Azure CLI login). Azure may be several subscriptions (`subscriptionIds`, the first is the default
 * for what a request does not place); the emulator's are all those it hosts.
 */
export type CloudConfig =
  | { kind: 'emulator'; connectionFile: string }
  | { kind: 'azure'; subscriptionId: string; subscriptionIds?: string[] };

/** One adapter per subscription behind one cloud; a single subscription is a plain AzureCloud. */
function overSubscriptions(ids: string[], make: (subscriptionId: string) => Cloud): Cloud {
  const unique = ids.filter((id, i) => ids.findIndex((o) => o.toLowerCase() === id.toLowerCase()) === i);
  if (unique.length === 1) return make(unique[0]!);
  return new MultiSubscriptionCloud(unique.map((subscriptionId) => ({ subscriptionId, cloud: make(subscriptionId) })));
}

export async function openCloud(config: CloudConfig): Promise<Cloud> {
  if (config.kind === 'emulator') {
    const { readConnectionInfo, emulatorClientOptions } = await import('../emulator/client.ts');
    const info = readConnectionInfo(config.connectionFile);
    const opts = emulatorClientOptions(info);
    return overSubscriptions(
      info.subscriptionIds ?? [opts.subscriptionId],
      (subscriptionId) =>
        new AzureCloud({
          subscriptionId,
          credential: opts.credential,
          computeOptions: opts.compute,
          blobOptions: opts.blob,
          pollIntervalMs: 50,
        }),
    );
  }
  const { DefaultAzureCredential } = await import('@azure/identity');
  const credential = new DefaultAzureCredential();
  return overSubscriptions(
    [config.subscriptionId, ...(config.subscriptionIds ?? [])],
    (subscriptionId) => new AzureCloud({ subscriptionId, credential }),
  );
}

/** AZURE_SUBSCRIPTION_IDS: more subscriptions to work on, separated by commas or spaces. */
export function subscriptionIdsFromEnv(): string[] {
  return (process.env.AZURE_SUBSCRIPTION_IDS ?? '').split(/[\s,]+/).filter(Boolean);
}

/**
 * The cloud named by the environment: AZURE_SUBSCRIPTION_ID (and AZURE_SUBSCRIPTION_IDS) for Azure,
 * else the emulator's connection file.
 */
export function cloudConfigFromEnv(defaultConnectionFile: string): CloudConfig {
  const more = subscriptionIdsFromEnv();
  if (
    process.env.GOLDSNAP_CLOUD === 'azure' ||
    ((process.env.AZURE_SUBSCRIPTION_ID || more.length) && process.env.GOLDSNAP_CLOUD !== 'emulator')
  ) {
    const subscriptionId = process.env.AZURE_SUBSCRIPTION_ID || more[0];
    if (!subscriptionId)
      throw new Error(
        'GOLDSNAP_CLOUD=azure needs AZURE_SUBSCRIPTION_ID or AZURE_SUBSCRIPTION_IDS (and credentials @azure/identity can find)',
      );
    return { kind: 'azure', subscriptionId, subscriptionIds: more };
  }
  return { kind: 'emulator', connectionFile: process.env.GOLDSNAP_EMULATOR ?? defaultConnectionFile };
}
