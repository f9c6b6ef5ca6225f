import type { ContainerClient } from '@azure/storage-blob';
import { ObjectNotFoundError, type Backend, type ObjectInfo } from './backend.ts';
import { splitLocation } from './location.ts';

export const AZURE_LOCATION_FORMS =
  'azure://container/prefix (account from AZURE_STORAGE_ACCOUNT/AZURE_STORAGE_KEY or AZURE_STORAGE_CONNECTION_STRING) ' +
  'or azure:http(s)://host:port/account/container/prefix (an explicit endpoint such as Azurite)';

/** Azurite's published development account key; used only for the account of that name. */
const DEVSTORE_ACCOUNT = 'devstoreaccount1';
const DEVSTORE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzureLocation {
  /** The blob service URL for an explicit endpoint, e.g. `http://127.0.0.1:10000/devstoreaccount1`. */
  serviceUrl?: string;
  /** The account of an explicit endpoint. */
  account?: string;
  container: string;
  /** Blob name prefix without leading or trailing slashes; empty for the container root. */
  prefix: string;
}

/**
 * Parses `azure://container/prefix` or `azure:http(s)://host:port/account/container/prefix`. With an
 * explicit endpoint the account is the first path segment (path-style, as Azurite serves it), unless
 * the host is `<account>.blob.<suffix>`. Keys and SAS tokens never go in the location.
 */
export function parseAzureLocation(location: string): AzureLocation {
  const { endpoint: url, segments } = splitLocation(location, {
    scheme: 'azure',
    label: 'Azure',
    forms: AZURE_LOCATION_FORMS,
    plainForm: 'azure://container/prefix',
    noQuery: 'SAS tokens are not accepted in the location',
    credentials: 'the key comes from AZURE_STORAGE_KEY or AZURE_STORAGE_CONNECTION_STRING',
  });
  if (!url) {
    const [container = '', ...prefix] = segments;
    return { container: checkContainer(container, location), prefix: prefix.join('/') };
  }
  const hostAccount = /^([a-z0-9]{3,24})\.blob\./.exec(url.hostname)?.[1];
  const account = hostAccount ?? segments.shift();
  if (!account) throw new Error(`Azure location ${location} names no account: use ${AZURE_LOCATION_FORMS}`);
  const [container = '', ...prefix] = segments;
  return {
    serviceUrl: hostAccount ? url.origin : `${url.origin}/${encodeURIComponent(account)}`,
    account,
    container: checkContainer(container, location),
    prefix: prefix.join('/'),
  };
}

function checkContainer(container: string, location: string): string {
  if (!container) throw new Error(`Azure location ${location} names no container: use ${AZURE_LOCATION_FORMS}`);
  if (!/^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/.test(container))
    throw new Error(`Azure location ${location}: ${JSON.stringify(container)} is not a valid container name`);
  return container;
}

function checkName(name: string): string {
  if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(name) || name.split('/').some((p) => p === '..' || p === '.')) {
    throw new Error(`invalid object name ${JSON.stringify(name)}`);
  }
  return name;
}

interface RestErrorLike {
  statusCode?: number;
  code?: string;
  details?: { errorCode?: string };
}
const statusOf = (err: unknown) => (err as RestErrorLike)?.statusCode;
const errorCode = (err: unknown) => (err as RestErrorLike)?.details?.errorCode ?? (err as RestErrorLike)?.code;

export interface AzureBlobBackendOptions {
  /** Where the account, key or connection string are read from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Blobs per list page (the service caps it at 5000). */
  listPageSize?: number;
}

type Credentials =
  | { kind: 'key'; serviceUrl: string; account: string; key: string }
  | { kind: 'connection-string'; connectionString: string }
  | { kind: 'default-azure-credential'; serviceUrl: string };

/**
 * A repository in an Azure Storage container, under a blob name prefix, as block blobs. An upload
 * (one Put Blob, or staged blocks and one Put Block List) becomes visible whole, so writes are
 * atomic. The SDK is loaded on first use.
 */
export class AzureBlobBackend implements Backend {
  readonly location: string;
  /** Last-Modified is given to the second. */
  readonly mtimeGranularityMs = 1000;
  private readonly where: AzureLocation;
  private readonly blobPrefix: string;
  private readonly credentials: Credentials;
  private readonly listPageSize?: number;
  private ready?: Promise<ContainerClient>;

  constructor(location: string, options: AzureBlobBackendOptions = {}) {
    const env = options.env ?? process.env;
    this.where = parseAzureLocation(location);
    this.blobPrefix = this.where.prefix ? `${this.where.prefix}/` : '';
    this.listPageSize = options.listPageSize;
    const path = `${this.where.container}${this.where.prefix ? `/${this.where.prefix}` : ''}`;
    this.location = this.where.serviceUrl ? `azure:${this.where.serviceUrl}/${path}` : `azure://${path}`;
    this.credentials = credentialsFor(this.where, env, this.location);
  }

  private connect(): Promise<ContainerClient> {
    this.ready ??= (async () => {
      const sdk = await import('@azure/storage-blob');
      const c = this.credentials;
      let service;
      if (c.kind === 'connection-string') service = sdk.BlobServiceClient.fromConnectionString(c.connectionString);
      else if (c.kind === 'key')
        service = new sdk.BlobServiceClient(c.serviceUrl, new sdk.StorageSharedKeyCredential(c.account, c.key));
      else {
        const { DefaultAzureCredential } = await import('@azure/identity');
        service = new sdk.BlobServiceClient(c.serviceUrl, new DefaultAzureCredential());
      }
      return service.getContainerClient(this.where.container);
    })();
    return this.ready;
  }

  private async blob(name: string) {
    const path = this.blobPrefix + checkName(name);
    return (await this.connect()).getBlockBlobClient(path);
  }

  async create(): Promise<void> {
    if (await this.stat('config')) {
      throw new Error(
        `${this.location} already holds a repository (it has a config); choose an empty container or prefix`,
      );
    }
    await (await this.connect()).createIfNotExists();
  }

  async put(name: string, data: Uint8Array): Promise<void> {
    const blob = await this.blob(name);
    await blob.uploadData(data, { blobHTTPHeaders: { blobContentType: 'application/octet-stream' } });
  }

  async get(name: string, offset?: number, length?: number): Promise<Buffer> {
    const blob = await this.blob(name);
    if (length === 0) {
      if (!(await this.stat(name))) throw new ObjectNotFoundError(name, this.location);
      return Buffer.alloc(0);
    }
    let res;
    try {
      res = await blob.download(offset ?? 0, length, { maxRetryRequests: 3 });
    } catch (err) {
      if (statusOf(err) === 404) throw new ObjectNotFoundError(name, this.location);
      // Reading from at or past the end: like a short file read, nothing is there.
      if (statusOf(err) === 416 || errorCode(err) === 'InvalidRange') return Buffer.alloc(0);
      throw err;
    }
    const parts: Buffer[] = [];
    for await (const part of res.readableStreamBody!) parts.push(part as Buffer);
    const buf = Buffer.concat(parts);
    if (res.contentLength !== undefined && buf.length !== res.contentLength) {
      throw new Error(`reading ${name} from ${this.location}: got ${buf.length} of ${res.contentLength} bytes`);
    }
    return buf;
  }

  async stat(name: string): Promise<ObjectInfo | undefined> {
    const blob = await this.blob(name);
    try {
      const p = await blob.getProperties();
      return { name, size: p.contentLength ?? 0, mtime: p.lastModified ?? new Date(0) };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const container = await this.connect();
    try {
      for await (const page of container
        .listBlobsFlat({ prefix: this.blobPrefix + prefix })
        .byPage({ maxPageSize: this.listPageSize })) {
        for (const b of page.segment.blobItems) {
          if (!b.name.startsWith(this.blobPrefix)) continue;
          yield {
            name: b.name.slice(this.blobPrefix.length),
            size: b.properties.contentLength ?? 0,
            mtime: b.properties.lastModified,
          };
        }
      }
    } catch (err) {
      if (errorCode(err) === 'ContainerNotFound') return; // no container, no blobs: like a folder not there yet
      throw err;
    }
  }

  async delete(name: string): Promise<void> {
    const blob = await this.blob(name);
    try {
      await blob.delete();
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  async close(): Promise<void> {}
}

function credentialsFor(where: AzureLocation, env: NodeJS.ProcessEnv, location: string): Credentials {
  if (where.serviceUrl) {
    const account = where.account!;
    const key = env.AZURE_STORAGE_KEY || (account === DEVSTORE_ACCOUNT ? DEVSTORE_KEY : undefined);
    if (key) return { kind: 'key', serviceUrl: where.serviceUrl, account, key };
    return { kind: 'default-azure-credential', serviceUrl: where.serviceUrl };
  }
  if (env.AZURE_STORAGE_CONNECTION_STRING)
    return { kind: 'connection-string', connectionString: env.AZURE_STORAGE_CONNECTION_STRING };
  const account = env.AZURE_STORAGE_ACCOUNT;
  if (!account) {
    throw new Error(
      `${location} needs a storage account: set AZURE_STORAGE_ACCOUNT (and AZURE_STORAGE_KEY) or AZURE_STORAGE_CONNECTION_STRING`,
    );
  }
  const serviceUrl = `https://${account}.blob.core.windows.net`;
  if (env.AZURE_STORAGE_KEY) return { kind: 'key', serviceUrl, account, key: env.AZURE_STORAGE_KEY };
  // No key: Microsoft Entra ID (managed identity, az login, workload identity…).
  return { kind: 'default-azure-credential', serviceUrl };
}
