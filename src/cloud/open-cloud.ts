import { AzureCloud } from './azure.ts';
import type { Cloud } from './cloud.ts';

/**
 * Which cloud Goldsnap works on: the emulator (by its connection file, written when it starts) or
 * real Azure (credentials from @azure/identity's default chain: environment, managed identity,
 * Azure CLI login).
 */
export type CloudConfig =
  | { kind: 'emulator'; connectionFile: string }
  | { kind: 'azure'; subscriptionId: string };

export async function openCloud(config: CloudConfig): Promise<Cloud> {
  if (config.kind === 'emulator') {
    const { readConnectionInfo, emulatorClientOptions } = await import('../emulator/client.ts');
    const opts = emulatorClientOptions(readConnectionInfo(config.connectionFile));
    return new AzureCloud({ subscriptionId: opts.subscriptionId, credential: opts.credential, computeOptions: opts.compute, blobOptions: opts.blob, pollIntervalMs: 50 });
  }
  const { DefaultAzureCredential } = await import('@azure/identity');
  return new AzureCloud({ subscriptionId: config.subscriptionId, credential: new DefaultAzureCredential() });
}

/** The cloud named by the environment: AZURE_SUBSCRIPTION_ID for Azure, else the emulator's connection file. */
export function cloudConfigFromEnv(defaultConnectionFile: string): CloudConfig {
  if (process.env.GOLDSNAP_CLOUD === 'azure' || (process.env.AZURE_SUBSCRIPTION_ID && process.env.GOLDSNAP_CLOUD !== 'emulator')) {
    const subscriptionId = process.env.AZURE_SUBSCRIPTION_ID;
    if (!subscriptionId) throw new Error('GOLDSNAP_CLOUD=azure needs AZURE_SUBSCRIPTION_ID (and credentials @azure/identity can find)');
    return { kind: 'azure', subscriptionId };
  }
  return { kind: 'emulator', connectionFile: process.env.GOLDSNAP_EMULATOR ?? defaultConnectionFile };
}
