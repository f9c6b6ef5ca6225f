import type { S3Client } from '@aws-sdk/client-s3';
import { ObjectNotFoundError, type Backend, type ObjectInfo } from './backend.ts';
import { splitLocation } from './location.ts';

type S3Module = typeof import('@aws-sdk/client-s3');

export interface S3Location {
  /** `http://host:port` for an S3-compatible service (path-style addressing); undefined for AWS. */
  endpoint?: string;
  bucket: string;
  /** Key prefix without leading or trailing slashes; empty for the bucket root. */
  prefix: string;
}

export const S3_LOCATION_FORMS =
  's3:http(s)://host:port/bucket/prefix (an S3-compatible service) or s3://bucket/prefix (AWS)';

/**
 * Parses `s3:http(s)://host:port/bucket/prefix` or `s3://bucket/prefix`. Credentials never go in the
 * location (they come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the rest of the SDK's default
 * chain), so a location with any is refused, without repeating them in the error.
 */
export function parseS3Location(location: string): S3Location {
  const { endpoint, segments } = splitLocation(location, {
    scheme: 's3',
    label: 'S3',
    forms: S3_LOCATION_FORMS,
    plainForm: 's3://bucket/prefix',
    noQuery: 'presigned URLs are not accepted',
    credentials: 'credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS default credential chain',
  });
  const [bucket = '', ...prefix] = segments;
  return {
    ...(endpoint ? { endpoint: endpoint.origin } : {}),
    bucket: checkBucket(bucket, location),
    prefix: prefix.join('/'),
  };
}

function checkBucket(bucket: string, location: string): string {
  if (!bucket) throw new Error(`S3 location ${location} names no bucket: use ${S3_LOCATION_FORMS}`);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    throw new Error(`S3 location ${location}: ${JSON.stringify(bucket)} is not a valid bucket name`);
  return bucket;
}

function checkName(name: string): string {
  if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(name) || name.split('/').some((p) => p === '..' || p === '.')) {
    throw new Error(`invalid object name ${JSON.stringify(name)}`);
  }
  return name;
}

interface SdkError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}
const status = (err: unknown) => (err as SdkError)?.$metadata?.httpStatusCode;
const code = (err: unknown) => (err as SdkError)?.name ?? (err as SdkError)?.Code;
const isNotFound = (err: unknown) =>
  status(err) === 404 || ['NoSuchKey', 'NotFound', 'NoSuchBucket'].includes(code(err) ?? '');

export interface S3BackendOptions {
  /** Where credentials and the region are read from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Keys per ListObjectsV2 page (S3 caps it at 1000). */
  listPageSize?: number;
}

/**
 * A repository in an S3 bucket, under a key prefix. PutObject is atomic, so objects are written
 * directly. The SDK is loaded on first use, so opening a folder repository never pays for it.
 */
export class S3Backend implements Backend {
  readonly location: string;
  /** Last-Modified is given to the second. */
  readonly mtimeGranularityMs = 1000;
  private readonly where: S3Location;
  private readonly keyPrefix: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly listPageSize?: number;
  private ready?: Promise<{ sdk: S3Module; client: S3Client }>;

  constructor(location: string, options: S3BackendOptions = {}) {
    this.where = parseS3Location(location);
    this.keyPrefix = this.where.prefix ? `${this.where.prefix}/` : '';
    this.env = options.env ?? process.env;
    this.listPageSize = options.listPageSize;
    const path = `${this.where.bucket}${this.where.prefix ? `/${this.where.prefix}` : ''}`;
    this.location = this.where.endpoint ? `s3:${this.where.endpoint}/${path}` : `s3://${path}`;
  }

  private connect(): Promise<{ sdk: S3Module; client: S3Client }> {
    this.ready ??= (async () => {
      const sdk = await import('@aws-sdk/client-s3');
      const credentials =
        this.env.AWS_ACCESS_KEY_ID && this.env.AWS_SECRET_ACCESS_KEY
          ? {
              accessKeyId: this.env.AWS_ACCESS_KEY_ID,
              secretAccessKey: this.env.AWS_SECRET_ACCESS_KEY,
              sessionToken: this.env.AWS_SESSION_TOKEN || undefined,
            }
          : undefined; // the SDK's default chain: profiles, SSO, web identity, instance metadata…
      if (this.where.endpoint) {
        return {
          sdk,
          client: new sdk.S3Client({
            endpoint: this.where.endpoint,
            forcePathStyle: true,
            region: this.env.AWS_REGION || 'us-east-1',
            credentials,
            // S3-compatible services often reject the newer default (CRC32 checksums on every request).
            requestChecksumCalculation: 'WHEN_REQUIRED',
            responseChecksumValidation: 'WHEN_REQUIRED',
          }),
        };
      }
      let region = this.env.AWS_REGION || this.env.AWS_DEFAULT_REGION;
      if (!region) {
        // Let the SDK look in ~/.aws/config; a bucket elsewhere is followed by its redirect.
        const probe = new sdk.S3Client({ credentials });
        region = await probe.config.region().catch(() => 'us-east-1');
        probe.destroy();
      }
      return { sdk, client: new sdk.S3Client({ region, credentials, followRegionRedirects: true }) };
    })();
    return this.ready;
  }

  private key(name: string): string {
    return this.keyPrefix + checkName(name);
  }

  async create(): Promise<void> {
    if (await this.stat('config')) {
      throw new Error(
        `${this.location} already holds a repository (it has a config); choose an empty bucket or prefix`,
      );
    }
    const { sdk, client } = await this.connect();
    const bucketExists = () =>
      client.send(new sdk.HeadBucketCommand({ Bucket: this.where.bucket })).then(
        () => true,
        (err) => {
          if (isNotFound(err)) return false;
          throw err;
        },
      );
    if (await bucketExists()) return;
    const region = await client.config.region();
    try {
      await client.send(
        new sdk.CreateBucketCommand({
          Bucket: this.where.bucket,
          ...(region !== 'us-east-1' ? { CreateBucketConfiguration: { LocationConstraint: region as never } } : {}),
        }),
      );
    } catch (err) {
      if (code(err) === 'BucketAlreadyOwnedByYou') return;
      // Someone created it since HeadBucket. Some S3-compatible services (s3rver, for one) say
      // BucketAlreadyExists even to the owner: the bucket is fine if we can reach it.
      if (code(err) === 'BucketAlreadyExists' && (await bucketExists().catch(() => false))) return;
      if (code(err) === 'BucketAlreadyExists')
        throw new Error(
          `bucket ${this.where.bucket} belongs to another account: choose another bucket name for ${this.location}`,
        );
      throw err;
    }
  }

  async put(name: string, data: Uint8Array): Promise<void> {
    const { sdk, client } = await this.connect();
    await client.send(
      new sdk.PutObjectCommand({
        Bucket: this.where.bucket,
        Key: this.key(name),
        Body: data,
        ContentLength: data.byteLength,
        ContentType: 'application/octet-stream',
      }),
    );
  }

  async get(name: string, offset?: number, length?: number): Promise<Buffer> {
    const key = this.key(name);
    if (length === 0) {
      if (!(await this.stat(name))) throw new ObjectNotFoundError(name, this.location);
      return Buffer.alloc(0);
    }
    const ranged = offset !== undefined && (offset > 0 || length !== undefined);
    const range = ranged ? `bytes=${offset}-${length === undefined ? '' : offset + length - 1}` : undefined;
    const { sdk, client } = await this.connect();
    let res;
    try {
      res = await client.send(new sdk.GetObjectCommand({ Bucket: this.where.bucket, Key: key, Range: range }));
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(name, this.location);
      // Reading from at or past the end: like a short file read, nothing is there.
      if (status(err) === 416 || code(err) === 'InvalidRange') return Buffer.alloc(0);
      throw err;
    }
    const bytes = await res.Body!.transformToByteArray();
    if (res.ContentLength !== undefined && bytes.byteLength !== res.ContentLength) {
      throw new Error(`reading ${name} from ${this.location}: got ${bytes.byteLength} of ${res.ContentLength} bytes`);
    }
    let buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // A server that ignores Range answers 200 with the whole object.
    if (range && res.$metadata.httpStatusCode === 200)
      buf = buf.subarray(offset, length === undefined ? undefined : offset! + length);
    return buf;
  }

  async stat(name: string): Promise<ObjectInfo | undefined> {
    const { sdk, client } = await this.connect();
    try {
      const res = await client.send(new sdk.HeadObjectCommand({ Bucket: this.where.bucket, Key: this.key(name) }));
      return { name, size: res.ContentLength ?? 0, mtime: res.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const { sdk, client } = await this.connect();
    let token: string | undefined;
    do {
      let page;
      try {
        page = await client.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.where.bucket,
            Prefix: this.keyPrefix + prefix,
            ContinuationToken: token,
            MaxKeys: this.listPageSize,
          }),
        );
      } catch (err) {
        if (code(err) === 'NoSuchBucket') return; // no bucket, no objects: like a folder that is not there yet
        throw err;
      }
      for (const o of page.Contents ?? []) {
        if (!o.Key?.startsWith(this.keyPrefix)) continue;
        yield { name: o.Key.slice(this.keyPrefix.length), size: o.Size ?? 0, mtime: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(name: string): Promise<void> {
    const { sdk, client } = await this.connect();
    try {
      await client.send(new sdk.DeleteObjectCommand({ Bucket: this.where.bucket, Key: this.key(name) }));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async close(): Promise<void> {
    const ready = this.ready;
    this.ready = undefined;
    if (ready) (await ready.catch(() => undefined))?.client.destroy();
  }
}
