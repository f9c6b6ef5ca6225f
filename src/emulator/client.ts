import { readFileSync } from 'node:fs';
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import type { StoragePipelineOptions } from '@azure/storage-blob';
import { hostStyleSasClient } from './host-style-sas.ts';

/** What a client needs to talk to an emulator (also written to <dataDir>/connection.json). */
export interface EmulatorConnectionInfo {
  armEndpoint: string;
  subscriptionId: string;
  /** Every subscription the emulator hosts, the first one first (absent when it hosts one). */
  subscriptionIds?: string[];
  token: string;
  caCertPem: string;
  /** The emulator gives host-style SAS URLs (md-….blob.storage.azure.net): blob clients send them to armEndpoint. */
  hostStyleSas?: boolean;
}

/** Reads <dataDir>/connection.json (or the given file) written by a running emulator. */
export function readConnectionInfo(pathOrDataDir: string): EmulatorConnectionInfo {
  const path = pathOrDataDir.endsWith('.json') ? pathOrDataDir : `${pathOrDataDir}/connection.json`;
  const info = JSON.parse(readFileSync(path, 'utf8')) as EmulatorConnectionInfo;
  for (const k of ['armEndpoint', 'subscriptionId', 'token', 'caCertPem'] as const) {
    if (typeof info[k] !== 'string' || !info[k]) throw new Error(`${path}: missing "${k}"`);
  }
  return info;
}

/** A TokenCredential that always returns the emulator's static bearer token. */
export class StaticTokenCredential implements TokenCredential {
  #token: string;
  constructor(token: string) {
    this.#token = token;
  }
  async getToken(): Promise<AccessToken> {
    return { token: this.#token, expiresOnTimestamp: Date.now() + 3600_000 };
  }
}

export interface EmulatorClientOptions {
  /** Pass to `new ComputeManagementClient(credential, subscriptionId, options.compute)`. */
  compute: { endpoint: string; tlsOptions: { ca: string }; credentials: { scopes: string[] } };
  /**
   * Pass to `new PageBlobClient(sasUrl, new AnonymousCredential(), options.blob)`. It carries
   * `tlsOptions`, which @azure/storage-blob forwards untyped to its core-rest-pipeline (the
   * pipeline's tlsPolicy then trusts the emulator CA for this client only).
   */
  blob: StoragePipelineOptions & { tlsOptions: { ca: string } };
  credential: StaticTokenCredential;
  subscriptionId: string;
}

const cache = new WeakMap<object, EmulatorClientOptions>();

/**
 * Client options that point the official SDKs at the emulator and make them trust its
 * self-signed certificate (for this client only).
 */
export function emulatorClientOptions(info: EmulatorConnectionInfo): EmulatorClientOptions {
  const hit = cache.get(info);
  if (hit) return hit;
  const tlsOptions = { ca: info.caCertPem };
  const opts: EmulatorClientOptions = {
    compute: { endpoint: info.armEndpoint, tlsOptions, credentials: { scopes: [`${info.armEndpoint}/.default`] } },
    // Retries as against Azure (503 ServerBusy, 500 OperationTimedOut, dropped connections), with
    // delays sized for a local emulator rather than the SDK's 4 s.
    blob: {
      tlsOptions,
      retryOptions: { maxTries: 6, retryDelayInMs: 100, maxRetryDelayInMs: 2000 },
      ...(info.hostStyleSas ? { httpClient: hostStyleSasClient(info.armEndpoint, info.caCertPem) } : {}),
    },
    credential: new StaticTokenCredential(info.token),
    subscriptionId: info.subscriptionId,
  };
  cache.set(info, opts);
  return opts;
}
