import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  ArmError,
  DEFAULT_TIMINGS,
  EmulatorCore,
  PAGE,
  StorageError,
  type ArmResult,
  type OperationTimings,
  type SasTarget,
} from './core.ts';
import { EmulatorControl } from './control.ts';
import { handleRestorePoints } from './restore-points.ts';
import { runCommand } from './run-command.ts';
import { handleResourceGroup } from './resource-groups.ts';
import { handleNetworkInterface } from './network.ts';
import { ExtentStore, type Range } from './extent-store.ts';
import { ReadBuffers } from './read-buffers.ts';
import type { EmulatorState } from './state.ts';
import { StateFile } from './state-file.ts';
import { ensureTlsMaterial } from './tls.ts';
import { FaultInjector, parseFaultProfile, type FaultProfile } from './faults.ts';
import { AZURE_LIMITS, type AzureLimits } from './limits.ts';
import { sasAccountOfHost } from './host-style-sas.ts';
import { matchRoute, route, type Route, type RouteRequest } from './routes.ts';
import { writeFileAtomic } from './durable.ts';
import type { EmulatorConnectionInfo } from './client.ts';
import { ContainerGroups, type ContainerGroupOptions } from './container-groups.ts';
import { ensureSubscriptionCount, hostedSubscription, hostedSubscriptions, inSubscription } from './subscriptions.ts';
import { errorMessage } from '../util/errors.ts';

export { emulatorClientOptions, readConnectionInfo, StaticTokenCredential } from './client.ts';
export type { EmulatorClientOptions, EmulatorConnectionInfo } from './client.ts';
export { EmulatorControl } from './control.ts';
export type {
  CreateVmSpec,
  CreateVmDiskSpec,
  DiskFill,
  EmulatedVmInfo,
  EmulatedDiskInfo,
  VmWrite,
  WriteToVmOptions,
  WrittenRange,
} from './control.ts';
export { EXTENT_SIZE } from './extent-store.ts';

export interface StartEmulatorOptions {
  dataDir: string;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Port (0 or omitted = random). */
  port?: number;
  /** Override long-running operation durations (ms). */
  timings?: Partial<OperationTimings>;
  /** Microsoft.ContainerInstance: quota and provisioning delay (container-groups.ts). */
  containerGroups?: ContainerGroupOptions;
  /** How many subscriptions the emulator hosts (default 1; more are added to a state that has fewer). */
  subscriptions?: number;
  /** Azure's limits, lowered by tests to reach them with small disks (default: Azure's). */
  limits?: Partial<AzureLimits>;
  /** A seeded fault profile (src/emulator/faults.ts), or its `--faults` text. */
  faults?: FaultProfile | string;
  /** SAS URLs host-style as Azure's (https://md-….blob.storage.azure.net/…; host-style-sas.ts). */
  hostStyleSas?: boolean;
}

export interface Emulator extends EmulatorConnectionInfo {
  /** https://127.0.0.1:port */
  armEndpoint: string;
  subscriptionId: string;
  /** The bearer token the emulator accepts (ARM and /_emulator). */
  token: string;
  caCertPem: string;
  /** Path of connection.json ({armEndpoint, subscriptionId, token, caCertPem}). */
  connectionFile: string;
  dataDir: string;
  control: EmulatorControl;
  /** The fault injector when a fault profile is set (its figures: faults injected, retries seen). */
  faults?: FaultInjector;
  /** Connection info as a plain object (what connection.json holds). */
  connectionInfo(): EmulatorConnectionInfo;
  close(): Promise<void>;
}

const MAX_JSON = 4 * 1024 * 1024;
const MAX_PUT_PAGE = 4 * 1024 * 1024;

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > max) throw new HttpError(413, 'request body too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function commonHeaders(req: IncomingMessage): Record<string, string> {
  const h: Record<string, string> = { 'x-ms-request-id': randomUUID(), date: new Date().toUTCString() };
  const cid = req.headers['x-ms-client-request-id'];
  if (typeof cid === 'string') h['x-ms-client-request-id'] = cid;
  return h;
}

function sendJson(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: unknown,
  extra: Record<string, string> = {},
): void {
  const headers: Record<string, string> = {
    ...commonHeaders(req),
    'x-ms-correlation-request-id': randomUUID(),
    ...extra,
  };
  if (body === undefined) {
    res.writeHead(status, { ...headers, 'content-length': '0' });
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
  });
  res.end(text);
}

function sendArmError(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  extra: Record<string, string> = {},
): void {
  sendJson(req, res, status, { error: { code, message } }, extra);
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

function sendStorageError(req: IncomingMessage, res: ServerResponse, e: StorageError): void {
  const h = commonHeaders(req);
  const body = `\uFEFF<?xml version="1.0" encoding="utf-8"?><Error><Code>${e.code}</Code><Message>${xmlEscape(e.message)}\nRequestId:${h['x-ms-request-id']}\nTime:${new Date().toISOString()}</Message></Error>`;
  const buf = Buffer.from(body);
  res.writeHead(e.status, {
    ...h,
    'x-ms-error-code': e.code,
    'x-ms-version': String(req.headers['x-ms-version'] ?? '2025-01-05'),
    'content-type': 'application/xml',
    'content-length': req.method === 'HEAD' ? '0' : String(buf.length),
  });
  res.end(req.method === 'HEAD' ? undefined : buf);
}

/** Parses "bytes=a-b" / "bytes=a-" against a blob of `size` bytes. */
function parseRange(value: string | undefined, size: number): { offset: number; length: number } | undefined {
  if (!value) return undefined;
  const m = /^bytes=(\d+)-(\d*)$/.exec(value.trim());
  if (!m)
    throw new StorageError(
      400,
      'InvalidHeaderValue',
      `The value for one of the HTTP headers is not in the correct format: range '${value}'.`,
    );
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start)
    throw new StorageError(416, 'InvalidRange', 'The range specified is invalid for the current size of the resource.');
  return { offset: start, length: end - start + 1 };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Starts the emulator (HTTPS, ARM + page-blob data plane + /_emulator control API). */
export async function startEmulator(opts: StartEmulatorOptions): Promise<Emulator> {
  const dataDir = resolve(opts.dataDir);
  const host = opts.host ?? '127.0.0.1';
  await mkdir(dataDir, { recursive: true });
  const tls = await ensureTlsMaterial(dataDir, host);
  const opened = await StateFile.open(dataDir);
  const stateFile = opened.file;
  let st: EmulatorState | undefined = opened.state;
  if (!st) {
    st = {
      version: 1,
      subscriptionId: randomUUID(),
      token: `gse_${randomBytes(24).toString('base64url')}`,
      sasKey: randomBytes(32).toString('hex'),
      disks: {},
      snapshots: {},
      virtualMachines: {},
      operations: {},
      grants: {},
    };
    await stateFile.save(st);
  }
  if (ensureSubscriptionCount(st, opts.subscriptions ?? 1)) await stateFile.save(st);
  const store = new ExtentStore(join(dataDir, 'content'));
  await store.init(EmulatorCore.liveContent(st));
  const faultProfile = typeof opts.faults === 'string' ? parseFaultProfile(opts.faults) : opts.faults;
  const faults = faultProfile ? new FaultInjector(faultProfile) : undefined;
  const timings = { ...DEFAULT_TIMINGS, ...opts.timings };
  if (faultProfile?.snapshotMs !== undefined) timings.snapshot = faultProfile.snapshotMs;
  if (faultProfile?.accessMs !== undefined) timings.access = faultProfile.accessMs;
  const core = new EmulatorCore(stateFile, stateFile.track(st), store, timings, { ...AZURE_LIMITS, ...opts.limits });
  const control = new EmulatorControl(core);
  const containerGroups = await ContainerGroups.open(dataDir, st.subscriptionId, opts.containerGroups);

  const server: Server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy(err as Error);
        return;
      }
      if (err instanceof StorageError) sendStorageError(req, res, err);
      else if (err instanceof ArmError) sendArmError(req, res, err.status, err.code, err.message);
      else if (err instanceof HttpError)
        sendArmError(req, res, err.status, err.status === 413 ? 'RequestEntityTooLarge' : 'BadRequest', err.message);
      else {
        process.emitWarning(`emulator: internal error: ${(err as Error).stack ?? String(err)}`);
        sendArmError(req, res, 500, 'InternalServerError', `Internal error: ${errorMessage(err)}`);
      }
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const armEndpoint = `https://${urlHost}:${port}`;
  core.baseUrl = armEndpoint;
  core.hostStyleSas = opts.hostStyleSas === true;
  const connection: EmulatorConnectionInfo = {
    armEndpoint,
    subscriptionId: st.subscriptionId,
    token: st.token,
    caCertPem: tls.certPem,
    ...(opts.hostStyleSas ? { hostStyleSas: true } : {}),
  };
  if (st.moreSubscriptionIds?.length) connection.subscriptionIds = hostedSubscriptions(st);
  const connectionFile = join(dataDir, 'connection.json');
  await writeFileAtomic(connectionFile, `${JSON.stringify(connection, null, 2)}\n`);

  function authorized(req: IncomingMessage, res: ServerResponse): boolean {
    const auth = header(req, 'authorization');
    if (auth === `Bearer ${st!.token}`) return true;
    const missing = !auth;
    sendArmError(
      req,
      res,
      401,
      missing ? 'AuthenticationFailed' : 'InvalidAuthenticationToken',
      missing ? "Authentication failed. The 'Authorization' header is missing." : 'The access token is invalid.',
      {
        'www-authenticate': `Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", error_description="${missing ? "The authentication failed because of missing 'Authorization' header." : 'The access token is invalid.'}"`,
      },
    );
    return false;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A host-style SAS (md-….blob.storage.azure.net) names its account in the Host header.
    const sasAccount = sasAccountOfHost(req.headers.host);
    const url = new URL(sasAccount ? `/${sasAccount}${req.url ?? '/'}` : (req.url ?? '/'), armEndpoint);
    const segs = url.pathname.split('/').filter(Boolean);
    if (segs[0] === '_emulator') {
      if (!authorized(req, res)) return;
      await handleControl(req, res, url, segs.slice(1));
      return;
    }
    faults?.noteRequest(header(req, 'x-ms-client-request-id'));
    if (segs[0]?.startsWith('md-')) {
      const fault = faults?.blobFault();
      if (fault) {
        await readBody(req, MAX_PUT_PAGE).catch(() => {});
        throw fault === 'busy'
          ? new StorageError(503, 'ServerBusy', 'The server is busy.')
          : new StorageError(500, 'OperationTimedOut', 'Operation could not be completed within the specified time.');
      }
      await handleBlob(req, res, url);
      return;
    }
    if (!authorized(req, res)) return;
    if (faults?.armFault()) {
      await readBody(req, MAX_JSON).catch(() => {});
      const after = String(faults.profile.retryAfterSeconds);
      sendArmError(req, res, 429, 'TooManyRequests', `The request is being throttled. Retry after ${after} seconds.`, {
        'retry-after': after,
      });
      return;
    }
    await handleArm(req, res, url, segs);
  }

  // ---------------------------------------------------------------- ARM
  function replyResult(req: IncomingMessage, res: ServerResponse, r: ArmResult, apiVersion: string): void {
    const extra: Record<string, string> = {};
    if (r.operation) {
      extra['azure-asyncoperation'] = core.operationUrl(r.operation, apiVersion, false);
      if (r.location) extra['location'] = core.operationUrl(r.operation, apiVersion, true);
    }
    sendJson(req, res, r.status, r.body, extra);
  }

  async function jsonBody(req: IncomingMessage): Promise<unknown> {
    const buf = await readBody(req, MAX_JSON);
    if (buf.length === 0) return undefined;
    try {
      return JSON.parse(buf.toString('utf8'));
    } catch {
      throw new ArmError(
        400,
        'InvalidRequestContent',
        'The request content was invalid and could not be deserialized.',
      );
    }
  }

  // One route per Azure operation (Microsoft.Compute, DiskRP/ComputeRP operation ids).
  const SUB = '/subscriptions/:sub';
  const RG = `${SUB}/resourceGroups/:rg/providers/Microsoft.Compute`;
  const apiVersionOf = (url: URL) => url.searchParams.get('api-version')!;
  const getOperation = async ({ req, res, url, params }: RouteRequest) => {
    const apiVersion = apiVersionOf(url);
    const op = core.getOperation(params['id']!);
    const done = Date.now() >= op.doneAt;
    if (url.searchParams.get('monitor') === 'true') {
      if (!done) {
        sendJson(req, res, 202, undefined, { location: core.operationUrl(op, apiVersion, true) });
        return;
      }
      sendJson(req, res, 200, op.output);
      return;
    }
    const body: Record<string, unknown> = {
      startTime: op.startTime,
      status: done ? 'Succeeded' : 'InProgress',
      name: op.id,
    };
    if (done) {
      body['endTime'] = new Date(op.doneAt).toISOString();
      if (op.output !== undefined) body['properties'] = { output: op.output };
    }
    sendJson(req, res, 200, body);
  };
  const armRoutes: Route[] = [
    route(
      'DiskOperations_Get',
      'GET',
      `${SUB}/providers/Microsoft.Compute/locations/:loc/DiskOperations/:id`,
      getOperation,
    ),
    route('Operations_Get', 'GET', `${SUB}/providers/Microsoft.Compute/locations/:loc/operations/:id`, getOperation),
    route('Disks_Update', 'PATCH', `${RG}/disks/:name`, async ({ req, res, url, params }) => {
      const body = await jsonBody(req);
      replyResult(
        req,
        res,
        await core.exclusive(() => core.patchDisk(params['rg']!, params['name']!, body)),
        apiVersionOf(url),
      );
    }),
  ];
  const OPERATION_PREFIX = { disks: 'Disks', snapshots: 'Snapshots', virtualMachines: 'VirtualMachines' } as const;
  for (const kind of ['disks', 'snapshots', 'virtualMachines'] as const) {
    const op = OPERATION_PREFIX[kind];
    const get = (rg: string, name: string) =>
      kind === 'disks'
        ? core.getDisk(rg, name)
        : kind === 'snapshots'
          ? core.getSnapshot(rg, name)
          : core.getVm(rg, name);
    const put = (rg: string, name: string, body: unknown) =>
      kind === 'disks'
        ? core.putDisk(rg, name, body)
        : kind === 'snapshots'
          ? core.putSnapshot(rg, name, body)
          : core.putVm(rg, name, body);
    const del = (rg: string, name: string) =>
      kind === 'virtualMachines' ? core.deleteVm(rg, name) : core.deleteDiskOrSnapshot(kind, rg, name);
    armRoutes.push(
      route(`${op}_List`, 'GET', `${SUB}/providers/Microsoft.Compute/${kind}`, async ({ req, res }) =>
        sendJson(req, res, 200, { value: core.list(kind) }),
      ),
      route(`${op}_ListByResourceGroup`, 'GET', `${RG}/${kind}`, async ({ req, res, params }) =>
        sendJson(req, res, 200, { value: core.list(kind, params['rg']!) }),
      ),
      route(`${op}_Get`, 'GET', `${RG}/${kind}/:name`, async ({ req, res, params }) =>
        sendJson(req, res, 200, get(params['rg']!, params['name']!)),
      ),
      route(`${op}_CreateOrUpdate`, 'PUT', `${RG}/${kind}/:name`, async ({ req, res, url, params }) => {
        const body = await jsonBody(req);
        replyResult(req, res, await core.exclusive(() => put(params['rg']!, params['name']!, body)), apiVersionOf(url));
      }),
      route(`${op}_Delete`, 'DELETE', `${RG}/${kind}/:name`, async ({ req, res, url, params }) => {
        replyResult(req, res, await core.exclusive(() => del(params['rg']!, params['name']!)), apiVersionOf(url));
      }),
    );
    if (kind === 'virtualMachines') continue;
    armRoutes.push(
      route(`${op}_GrantAccess`, 'POST', `${RG}/${kind}/:name/beginGetAccess`, async ({ req, res, url, params }) => {
        const body = await jsonBody(req);
        replyResult(
          req,
          res,
          await core.exclusive(() => core.grantAccess(kind, params['rg']!, params['name']!, body)),
          apiVersionOf(url),
        );
      }),
      route(`${op}_RevokeAccess`, 'POST', `${RG}/${kind}/:name/endGetAccess`, async ({ req, res, url, params }) => {
        await readBody(req, MAX_JSON);
        replyResult(
          req,
          res,
          await core.exclusive(() => core.revokeAccess(kind, params['rg']!, params['name']!)),
          apiVersionOf(url),
        );
      }),
    );
  }

  // VM restore points (restore-points.ts answers each operation on the rest of the path), resource
  // groups and network interfaces (what a restored VM needs), and Run Command (guest scripts).
  const restOf = (params: Record<string, string>) => (params['0'] ? params['0'].split('/') : []);
  for (const method of ['GET', 'PUT', 'DELETE', 'POST']) {
    armRoutes.push(
      route(
        `RestorePoints_${method}`,
        method,
        `${SUB}/providers/Microsoft.Compute/restorePointCollections{/*}?`,
        async ({ req, res, url, params }) =>
          replyResult(
            req,
            res,
            await handleRestorePoints(core, { method, path: restOf(params), body: () => jsonBody(req) }),
            apiVersionOf(url),
          ),
      ),
      route(
        `RestorePointsByGroup_${method}`,
        method,
        `${RG}/restorePointCollections{/*}?`,
        async ({ req, res, url, params }) => {
          const r = await handleRestorePoints(core, {
            method,
            resourceGroup: params['rg']!,
            path: restOf(params),
            expand: url.searchParams.get('$expand'),
            body: () => jsonBody(req),
          });
          replyResult(req, res, r, apiVersionOf(url));
        },
      ),
      route(`ResourceGroups_${method}`, method, `${SUB}/resourceGroups/:name`, async ({ req, res, url, params }) =>
        replyResult(
          req,
          res,
          await handleResourceGroup(core, method, params['name']!, () => jsonBody(req)),
          apiVersionOf(url),
        ),
      ),
      route(
        `NetworkInterfaces_${method}`,
        method,
        `${SUB}/resourceGroups/:rg/providers/Microsoft.Network/networkInterfaces/:name`,
        async ({ req, res, url, params }) =>
          replyResult(
            req,
            res,
            await handleNetworkInterface(core, method, params['rg']!, params['name']!, () => jsonBody(req)),
            apiVersionOf(url),
          ),
      ),
    );
  }
  armRoutes.push(
    route(
      'VirtualMachines_RunCommand',
      'POST',
      `${RG}/virtualMachines/:name/runCommand`,
      async ({ req, res, url, params }) => {
        const body = await jsonBody(req);
        replyResult(
          req,
          res,
          await core.exclusive(() => runCommand(core, params['rg']!, params['name']!, body)),
          apiVersionOf(url),
        );
      },
    ),
  );

  async function handleArm(req: IncomingMessage, res: ServerResponse, url: URL, segs: string[]): Promise<void> {
    const apiVersion = url.searchParams.get('api-version');
    if (!apiVersion) {
      await readBody(req, MAX_JSON).catch(() => {});
      throw new ArmError(
        400,
        'MissingApiVersionParameter',
        'The api-version query parameter (?api-version=) is required for all requests.',
      );
    }
    const lower = segs.map((s) => s.toLowerCase());
    if (lower[0] !== 'subscriptions' || segs.length < 2)
      throw new ArmError(404, 'NotFound', `No route for ${url.pathname}`);
    const subscription = hostedSubscription(st!, segs[1]!);
    if (!subscription)
      throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${segs[1]}' could not be found.`);
    await inSubscription(subscription, () => handleArmIn(req, res, url, segs, lower, apiVersion));
  }

  async function handleArmIn(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    segs: string[],
    lower: string[],
    apiVersion: string,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    // Microsoft.ContainerInstance (container-groups.ts) answers its own paths.
    const aci = await containerGroups.handle(method, segs, lower, () => jsonBody(req));
    if (aci) {
      sendJson(req, res, aci.status, aci.body);
      return;
    }
    const found = matchRoute(armRoutes, method, url.pathname);
    if (found && 'route' in found) {
      await found.route.handle({ req, res, url, params: found.params });
      return;
    }
    await readBody(req, MAX_JSON).catch(() => {});
    if (found)
      throw new ArmError(
        405,
        'MethodNotAllowed',
        `${method} is not supported by the emulator for ${url.pathname} (${[...new Set(found.allowed)].join(', ')} are).`,
      );
    if (
      lower[2] === 'resourcegroups' &&
      lower[4] === 'providers' &&
      lower[5] === 'microsoft.compute' &&
      !['disks', 'snapshots', 'virtualmachines'].includes(lower[6] ?? '')
    ) {
      throw new ArmError(
        404,
        'InvalidResourceType',
        `The resource type '${segs[6] ?? ''}' could not be found in the namespace 'Microsoft.Compute' for api version '${apiVersion}'.`,
      );
    }
    throw new ArmError(404, 'NotFound', `No route for ${method} ${url.pathname}`);
  }

  // ---------------------------------------------------------------- page-blob data plane
  function blobHeaders(req: IncomingMessage, t: SasTarget): Record<string, string> {
    return {
      ...commonHeaders(req),
      'x-ms-version': String(req.headers['x-ms-version'] ?? '2025-01-05'),
      etag: core.etag(t.rec.contentId),
      'last-modified': new Date(t.rec.timeCreated).toUTCString(),
    };
  }

  /** What Get Blob and Get Blob Properties both say of a page blob. */
  function pageBlobHeaders(req: IncomingMessage, t: SasTarget, contentLength: number): Record<string, string> {
    return {
      ...blobHeaders(req, t),
      'content-length': String(contentLength),
      'content-type': 'application/octet-stream',
      'x-ms-blob-type': 'PageBlob',
      'x-ms-blob-sequence-number': '0',
      'x-ms-creation-time': new Date(t.rec.timeCreated).toUTCString(),
      'x-ms-server-encrypted': 'true',
      'accept-ranges': 'bytes',
    };
  }

  /**
   * As Azure: at most `pageRangesPerResponse` ranges (or `maxresults`) per answer, then a
   * NextMarker to continue from; a span too fragmented to list in one go times out server-side.
   */
  function pageListXml(ranges: Range[], cleared: Range[], url: URL): string {
    const all = [
      ...ranges.map((r) => ({ r, tag: 'PageRange' })),
      ...cleared.map((r) => ({ r, tag: 'ClearRange' })),
    ].sort((a, b) => a.r.start - b.r.start);
    if (all.length > core.limits.pageRangesTimeout) {
      throw new StorageError(
        500,
        'OperationTimedOut',
        `Operation could not be completed within the specified time: ${all.length} page ranges in the requested span; ask for the page ranges in smaller segments.`,
      );
    }
    const marker = url.searchParams.get('marker');
    let from = 0;
    if (marker) {
      const m = /^gs1!(\d+)$/.exec(Buffer.from(marker, 'base64url').toString());
      if (!m)
        throw new StorageError(
          400,
          'InvalidQueryParameterValue',
          `Value for one of the query parameters specified in the request URI is invalid: marker '${marker}'.`,
        );
      const at = Number(m[1]);
      from = all.findIndex((e) => e.r.start >= at);
      if (from < 0) from = all.length;
    }
    const max = Math.min(
      core.limits.pageRangesPerResponse,
      Number(url.searchParams.get('maxresults') ?? Infinity) || Infinity,
    );
    const page = all.slice(from, from + max);
    const next = from + max < all.length ? Buffer.from(`gs1!${all[from + max]!.r.start}`).toString('base64url') : '';
    return `\uFEFF<?xml version="1.0" encoding="utf-8"?><PageList>${page.map(({ r, tag }) => `<${tag}><Start>${r.start}</Start><End>${r.end}</End></${tag}>`).join('')}${next ? `<NextMarker>${next}</NextMarker>` : '<NextMarker />'}</PageList>`;
  }

  /** What a data-plane operation gets: the request, and the disk or snapshot its SAS opens. */
  interface BlobRequest {
    req: IncomingMessage;
    res: ServerResponse;
    url: URL;
    t: SasTarget;
    size: number;
    rangeHeader: string | undefined;
  }

  /** One handler per page-blob operation, by method and `comp` (`*`: any). */
  const blobOperations: Array<{
    operation: string;
    method: string;
    comp: string | null;
    handle(b: BlobRequest): Promise<void>;
  }> = [
    { operation: 'GetBlobProperties', method: 'HEAD', comp: '*', handle: getBlobProperties },
    { operation: 'GetBlobProperties', method: 'GET', comp: 'properties', handle: getBlobProperties },
    { operation: 'GetPageRanges', method: 'GET', comp: 'pagelist', handle: getPageRanges },
    { operation: 'GetBlob', method: 'GET', comp: null, handle: getBlob },
    { operation: 'PutPage', method: 'PUT', comp: 'page', handle: putPage },
  ];

  async function getBlobProperties({ req, res, t, size }: BlobRequest): Promise<void> {
    res.writeHead(200, {
      ...pageBlobHeaders(req, t, size),
      'x-ms-lease-state': 'available',
      'x-ms-lease-status': 'unlocked',
    });
    res.end();
  }

  async function getPageRanges({ req, res, url, t, size, rangeHeader }: BlobRequest): Promise<void> {
    const r = parseRange(rangeHeader, size) ?? { offset: 0, length: size };
    const prevUrl = header(req, 'x-ms-previous-snapshot-url');
    if (url.searchParams.get('prevsnapshot'))
      throw new StorageError(
        400,
        'UnsupportedQueryParameter',
        'prevsnapshot is not supported for managed disks; use x-ms-previous-snapshot-url.',
      );
    let xml: string;
    if (prevUrl) {
      let pu: URL;
      try {
        pu = new URL(prevUrl);
      } catch {
        throw new StorageError(400, 'InvalidHeaderValue', 'x-ms-previous-snapshot-url is not a valid URL.');
      }
      let prev: SasTarget;
      try {
        const prevAccount = sasAccountOfHost(pu.host);
        prev = core.resolveSas(prevAccount ? `/${prevAccount}${pu.pathname}` : pu.pathname, pu.searchParams);
      } catch (e) {
        if (e instanceof StorageError)
          throw new StorageError(
            409,
            'PreviousSnapshotNotFound',
            `The previous snapshot could not be accessed: ${e.message}`,
          );
        throw e;
      }
      const d = core.pageRangesDiff(t, prev, r.offset, r.length);
      xml = pageListXml(d.changed, d.cleared, url);
    } else {
      xml = pageListXml(core.pageRanges(t, r.offset, r.length), [], url);
    }
    const buf = Buffer.from(xml);
    res.writeHead(200, {
      ...blobHeaders(req, t),
      'content-type': 'application/xml',
      'content-length': String(buf.length),
      'x-ms-blob-content-length': String(size),
    });
    res.end(buf);
  }

  // Get Blob bodies are read in pieces of up to 4 MiB into reused buffers: enough spares for the
  // 16 reads a data proxy keeps in flight.
  const CH = 4 * 1024 * 1024;
  const readBuffers = new ReadBuffers(CH, 16);

  async function getBlob({ req, res, t, size, rangeHeader }: BlobRequest): Promise<void> {
    const r = parseRange(rangeHeader, size);
    const offset = r?.offset ?? 0;
    const length = r?.length ?? size;
    const headers = pageBlobHeaders(req, t, length);
    if (r) headers['content-range'] = `bytes ${offset}-${offset + length - 1}/${size}`;
    res.writeHead(r ? 206 : 200, headers);
    if (faults?.dropRead()) {
      // A connection lost mid-transfer: part of the body, then a reset.
      const part = await core.store.read(t.rec.contentId, offset, Math.max(1, Math.min(CH, Math.floor(length / 2))));
      res.write(part);
      res.destroy();
      return;
    }
    for (let o = offset; o < offset + length; o += CH) {
      const buffer = readBuffers.take();
      const chunk = buffer.subarray(0, Math.min(CH, offset + length - o));
      await core.store.readInto(t.rec.contentId, o, chunk);
      // Back to the pool once the socket has taken the bytes; a failed write leaves it to the GC.
      const flowing = res.write(chunk, (err) => {
        if (!err) readBuffers.give(buffer);
      });
      if (!flowing) await new Promise<void>((ok) => res.once('drain', ok));
      if (res.destroyed) return;
    }
    res.end();
  }

  async function putPage({ req, res, t, size, rangeHeader }: BlobRequest): Promise<void> {
    const mode = header(req, 'x-ms-page-write');
    if (mode !== 'update' && mode !== 'clear')
      throw new StorageError(400, 'InvalidHeaderValue', "x-ms-page-write must be 'update' or 'clear'.");
    if (!rangeHeader)
      throw new StorageError(
        400,
        'MissingRequiredHeader',
        'An HTTP header that is mandatory for this request is not specified: x-ms-range.',
      );
    const m = /^bytes=(\d+)-(\d+)$/.exec(rangeHeader.trim());
    if (!m) throw new StorageError(400, 'InvalidHeaderValue', `Invalid range '${rangeHeader}'.`);
    const start = Number(m[1]);
    const end = Number(m[2]);
    if (start % PAGE !== 0 || (end + 1) % PAGE !== 0 || end < start) {
      throw new StorageError(
        416,
        'InvalidPageRange',
        'The page range specified is invalid: it must be aligned to 512-byte pages.',
      );
    }
    if (end >= size)
      throw new StorageError(416, 'InvalidPageRange', 'The page range specified is beyond the size of the blob.');
    const length = end - start + 1;
    if (mode === 'update' && length > MAX_PUT_PAGE)
      throw new StorageError(
        413,
        'RequestBodyTooLarge',
        'The request body is too large and exceeds the maximum permissible limit (4 MiB).',
      );
    let data: Buffer | null = null;
    if (mode === 'update') {
      data = await readBody(req, MAX_PUT_PAGE);
      if (data.length !== length)
        throw new StorageError(
          400,
          'InvalidHeaderValue',
          `Content-Length ${data.length} does not match the range length ${length}.`,
        );
    } else {
      await readBody(req, 0);
    }
    await core.putPages(t, start, length, data);
    res.writeHead(201, {
      ...blobHeaders(req, t),
      'content-length': '0',
      'x-ms-blob-sequence-number': '0',
      'x-ms-request-server-encrypted': 'true',
    });
    res.end();
  }

  async function handleBlob(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      const method = req.method ?? 'GET';
      const t = core.resolveSas(url.pathname, url.searchParams);
      if (
        t.rec.dataAccessAuthMode === 'AzureActiveDirectory' &&
        header(req, 'authorization') !== `Bearer ${st!.token}`
      ) {
        throw new StorageError(
          401,
          'NoAuthenticationInformation',
          `${t.rec.name} has dataAccessAuthMode AzureActiveDirectory: every data request needs an Entra ID bearer token (Authorization: Bearer) besides the SAS.`,
        );
      }
      const comp = url.searchParams.get('comp');
      const op = blobOperations.find((o) => o.method === method && (o.comp === '*' || o.comp === comp));
      if (!op)
        throw new StorageError(
          400,
          'UnsupportedHttpVerb',
          `The emulator does not support ${method}${comp ? ` comp=${comp}` : ''} on managed disk blobs.`,
        );
      await op.handle({
        req,
        res,
        url,
        t,
        size: t.rec.sizeBytes,
        rangeHeader: header(req, 'x-ms-range') ?? header(req, 'range'),
      });
    } catch (err) {
      if (err instanceof HttpError && err.status === 413)
        throw new StorageError(413, 'RequestBodyTooLarge', err.message);
      throw err;
    }
  }

  // ---------------------------------------------------------------- control API
  async function handleControl(req: IncomingMessage, res: ServerResponse, url: URL, segs: string[]): Promise<void> {
    const method = req.method ?? 'GET';
    const route = `${method} ${segs.join('/')}`;
    if (route === 'GET info') {
      sendJson(req, res, 200, {
        ...connection,
        caCertPem: undefined,
        vms: control.listVms(),
        ticker: control.tickerRunning,
      });
      return;
    }
    if (route === 'GET vms') {
      sendJson(req, res, 200, { value: control.listVms() });
      return;
    }
    if (route === 'POST vms') {
      sendJson(req, res, 201, await control.createVm((await jsonBody(req)) as never));
      return;
    }
    if (method === 'POST' && segs[0] === 'vms' && segs.length === 3 && segs[2] === 'writes') {
      const b = ((await jsonBody(req)) ?? {}) as {
        fraction?: number;
        seed?: number;
        writes?: {
          diskName: string;
          offset: number;
          length?: number;
          pattern?: 'random' | 'zeros' | number;
          dataBase64?: string;
        }[];
      };
      const writes = b.writes?.map((w) => {
        const out: import('./control.ts').VmWrite = { diskName: w.diskName, offset: w.offset };
        if (w.dataBase64 !== undefined) out.data = Buffer.from(w.dataBase64, 'base64');
        if (w.length !== undefined) out.length = w.length;
        if (w.pattern !== undefined) out.pattern = w.pattern;
        return out;
      });
      const o: import('./control.ts').WriteToVmOptions = {};
      if (b.fraction !== undefined) o.fraction = b.fraction;
      if (b.seed !== undefined) o.seed = b.seed;
      if (writes) o.writes = writes;
      sendJson(req, res, 200, { written: await control.writeToVm(decodeURIComponent(segs[1]!), o) });
      return;
    }
    if (route === 'GET disk-content') {
      const id = url.searchParams.get('id');
      if (!id) throw new ArmError(400, 'InvalidParameter', 'query parameter id is required');
      const buf = await control.readDisk(id);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(buf.length) });
      res.end(buf);
      return;
    }
    if (route === 'GET faults') {
      sendJson(req, res, 200, faults ? { profile: faults.profile, ...faults.figures() } : { profile: null });
      return;
    }
    if (route === 'GET grants') {
      sendJson(req, res, 200, { value: core.activeGrants() });
      return;
    }
    if (route === 'POST limits') {
      // Lowers (or restores) Azure's limits on a running emulator, so tests reach them quickly.
      const b = ((await jsonBody(req)) ?? {}) as Record<string, unknown>;
      for (const [k, v] of Object.entries(b)) {
        if (!(k in AZURE_LIMITS) || typeof v !== 'number' || !(v >= 0))
          throw new ArmError(
            400,
            'InvalidParameter',
            `limits: ${k} is not a limit or not a number ≥ 0 (${Object.keys(AZURE_LIMITS).join(', ')})`,
          );
      }
      Object.assign(core.limits, b);
      sendJson(req, res, 200, core.limits);
      return;
    }
    if (route === 'POST expire-sas') {
      // Time passing for the SAS links only: every one given so far is now expired.
      sendJson(req, res, 200, { expired: await core.exclusive(() => core.expireGrants()) });
      return;
    }
    if (route === 'POST seed-demo') {
      sendJson(req, res, 200, { value: await control.seedDemo() });
      return;
    }
    if (route === 'POST ticker') {
      const b = ((await jsonBody(req)) ?? {}) as { intervalMs?: number; fraction?: number; enabled?: boolean };
      if (b.enabled === false) control.stopTicker();
      else control.startTicker({ intervalMs: b.intervalMs ?? 10_000, fraction: b.fraction ?? 0.01 });
      sendJson(req, res, 200, { ticker: control.tickerRunning });
      return;
    }
    throw new ArmError(404, 'NotFound', `No control route ${route}`);
  }

  let closed = false;
  return {
    armEndpoint,
    subscriptionId: st.subscriptionId,
    token: st.token,
    caCertPem: tls.certPem,
    ...(opts.hostStyleSas ? { hostStyleSas: true } : {}),
    connectionFile,
    dataDir,
    control,
    ...(faults ? { faults } : {}),
    connectionInfo: () => ({ ...connection }),
    async close() {
      if (closed) return;
      closed = true;
      control.stopTicker();
      await containerGroups.close();
      const done = new Promise<void>((ok) => server.close(() => ok()));
      server.closeAllConnections();
      await done;
      // Let in-flight mutations finish (they are durable once done).
      await core.exclusive(async () => {});
      await stateFile.close();
      await store.close();
    },
  };
}
