import swagger from '@fastify/swagger';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { InvalidInputError, NotFoundError, type PolicyStore } from '../catalog/policies.ts';
import type { SqlRunStore } from '../catalog/run-store.ts';
import type { TokenStore } from '../catalog/tokens.ts';
import type { ProxyCredentialStore } from '../catalog/proxy-credentials.ts';
import { registerProxyCredentialRoutes } from '../proxy/credential-routes.ts';
import { proxyAuth } from '../proxy/proxy-auth.ts';
import { crossRegionTotals } from '../orchestrator/cross-region.ts';
import { PROXY_CLAIM_WAIT_MS } from '../proxy/protocol.ts';
import type { Orchestrator } from '../orchestrator/orchestrator.ts';
import type { ProxyLauncher } from '../proxy/launcher.ts';
import { type ControlQueue, transferQueueDepths } from '../jobs.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { Cloud, CloudVm } from '../../cloud/cloud.ts';
import { planRestore } from '../restore/restore-request.ts';
import { Roles, roleAllows, type Role } from './auth.ts';
import { registerFileRoutes } from './files-routes.ts';
import type { Logger } from 'pino';
import type { Repository } from '../../repository/repository.ts';
import type { Alerter } from '../alerts/alerter.ts';
import { alertRoutes } from './routes/alerts.ts';
import { auditRoutes } from './routes/audit.ts';
import { consoleRoutes } from './routes/console.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { oidcRoutes } from './routes/oidc.ts';
import { runRoutes } from './routes/runs.ts';
import { checkRoutes } from './routes/checks.ts';
import { mentions, pageHeaders, pageOf, pageQuery, textQuery, timeRangeQuery } from './routes/paging.ts';
import { isProtected } from '../catalog/policies.ts';
import { queryRecoveryPoints, queryRestoreIds } from '../catalog/list-queries.ts';
import type { RepositoryChecker } from '../checks/repository-checker.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { idParam } from './schemas.ts';
import { RunSteps } from '../orchestrator/run-model.ts';
import { installStrictValidation } from './validation.ts';

/** The longest a GET /api/runs/:id?waitMs= is held. */
const RUN_WAIT_MAX_MS = 60_000;

export interface ApiDeps {
  runs: SqlRunStore;
  policies: PolicyStore;
  tokens: TokenStore;
  queue: ControlQueue;
  orchestrator: Orchestrator;
  scheduler: Scheduler;
  launcher: ProxyLauncher;
  /** GOLDSNAP_PROXY_TOKEN, the deprecated secret shared by all regions (accepted when set). */
  proxyToken?: string;
  /** Per-region credentials data proxies present on /internal/proxy. */
  proxyCredentials?: ProxyCredentialStore;
  /** Alert detection and delivery (routes under /api/alerts). */
  alerter?: Alerter;
  /** Scheduled repository checks (routes under /api/checks). */
  checker?: RepositoryChecker;
  /** The repository, for file-level restore and its size in /metrics. */
  repo?: Repository;
  /** Logs each request (JSON, without credentials) when given. */
  logger?: Logger;
  /** The cloud, to check a restore's targets before it is queued. */
  cloud: Cloud;
}

declare module 'fastify' {
  interface FastifyRequest {
    role?: Role;
  }
}

const selection = {
  type: 'object',
  additionalProperties: false,
  properties: {
    vmIds: { type: 'array', items: { type: 'string' } },
    tags: { type: 'object', additionalProperties: { type: 'string' } },
    resourceGroups: { type: 'array', items: { type: 'string' } },
    subscriptions: { type: 'array', items: { type: 'string' } },
  },
} as const;
const retention = {
  type: 'object',
  additionalProperties: false,
  properties: {
    last: { type: 'integer', minimum: 0 },
    hourly: { type: 'integer', minimum: 0 },
    daily: { type: 'integer', minimum: 0 },
    weekly: { type: 'integer', minimum: 0 },
    monthly: { type: 'integer', minimum: 0 },
    yearly: { type: 'integer', minimum: 0 },
  },
} as const;
const policyBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 100 },
    cron: { type: 'string' },
    timeZone: { type: 'string' },
    selection,
    retention,
    enabled: { type: 'boolean' },
    consistency: {
      type: 'object',
      additionalProperties: false,
      required: ['mode'],
      description:
        'crash: a restore point alone; application: an application-consistent one, with guest scripts around it',
      properties: {
        mode: { type: 'string', enum: ['crash', 'application'] },
        preScript: { type: 'string' },
        postScript: { type: 'string' },
        scriptTimeoutSeconds: { type: 'integer', minimum: 1 },
      },
    },
  },
} as const;

/**
 * The REST API (OpenAPI at /api/openapi.json). Every /api route needs `Authorization: Bearer
 * <token>`; viewers read, operators also start backups and restores, admins also change policies
 * and tokens. /internal/proxy is for data proxies only.
 */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  /** Claims proxies made of this server since it started, and how many it holds now (long polls). */
  const claimStats = { requests: 0, waiting: 0 };
  const app = (
    Fastify({
      ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
      bodyLimit: 1024 * 1024,
    }) as unknown as FastifyInstance
  ).withTypeProvider<JsonSchemaToTsProvider>();
  installStrictValidation(app);
  await app.register(swagger, {
    openapi: {
      info: { title: 'Goldsnap API', version: '1', description: 'Agentless, incremental-forever backup for cloud VMs' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  const needs = (role: Role) => async (req: FastifyRequest, reply: FastifyReply) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const found = token ? await deps.tokens.verify(token) : undefined;
    if (!found)
      return reply.code(401).send({ error: 'missing or unknown API token: pass Authorization: Bearer <token>' });
    req.caller = found;
    if (!roleAllows(found.role, role))
      return reply.code(403).send({ error: `this needs the ${role} role; the token has ${found.role}` });
    req.role = found.role;
  };
  const proxyOnly = proxyAuth({ credentials: deps.proxyCredentials, legacyToken: deps.proxyToken, queue: deps.queue });

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof InvalidInputError) return reply.code(400).send({ error: err.message, field: err.field });
    if (err instanceof NotFoundError) return reply.code(404).send({ error: err.message });
    const { statusCode, message, field } = err as { statusCode?: number; message: string; field?: string };
    if (statusCode && statusCode < 500)
      return reply.code(statusCode).send({ error: message, ...(field === undefined ? {} : { field }) });
    return reply.code(500).send({ error: message });
  });

  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  // The web console: static files, a client of this API like the CLI.
  consoleRoutes(app);
  app.get('/api/health', { schema: { security: [], summary: 'Liveness' } }, async () => ({ ok: true }));

  app.get(
    '/api/vms',
    {
      preHandler: needs('viewer'),
      schema: {
        summary: 'VMs in the cloud account, with their disks; filtered and paged (total in X-Total-Count)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            refresh: { type: 'boolean' },
            region: { type: 'string', minLength: 1 },
            resourceGroup: { type: 'string', minLength: 1 },
            protected: { type: 'boolean', description: 'selected by an enabled policy, or not' },
            ...textQuery,
            ...pageQuery,
          },
        },
      },
    },
    async (req, reply) => {
      const q = req.query;
      if (q.refresh) await deps.orchestrator.refreshInventory();
      const golden = new Map((await deps.runs.listGolden()).map((g) => [g.diskId, g]));
      const policies = await deps.policies.list();
      const vms = (await deps.runs.listVms()).map((vm) => ({ ...vm, protected: isProtected(vm, policies) }));
      return pageOf(
        req,
        reply,
        '/api/vms',
        vms,
        (vm) =>
          (q.region === undefined || vm.region === q.region) &&
          (q.resourceGroup === undefined || vm.resourceGroup.toLowerCase() === q.resourceGroup.toLowerCase()) &&
          (q.protected === undefined || vm.protected === q.protected) &&
          mentions(q.q, vm.name, vm.id, vm.resourceGroup, vm.region, ...Object.values(vm.tags ?? {})),
      ).map((vm) => ({ ...vm, disks: vm.disks.map((d) => ({ ...d, golden: golden.get(d.id) })) }));
    },
  );

  app.get(
    '/api/policies',
    {
      preHandler: needs('viewer'),
      schema: {
        summary: 'Backup policies, filtered and paged (total in X-Total-Count)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { enabled: { type: 'boolean' }, ...textQuery, ...pageQuery },
        },
      },
    },
    async (req, reply) => {
      const { enabled, q } = req.query;
      const page = pageOf(
        req,
        reply,
        '/api/policies',
        await deps.policies.list(),
        (p) => (enabled === undefined || p.enabled === enabled) && mentions(q, p.name, p.id, p.cron),
      );
      return page.map((p) => ({ ...p, nextRuns: deps.scheduler.nextRuns(p, 3) }));
    },
  );
  app.post(
    '/api/policies',
    {
      preHandler: needs('admin'),
      schema: {
        summary: 'Create a policy',
        body: { ...policyBody, required: ['name', 'cron', 'selection', 'retention'] },
      },
    },
    async (req, reply) => reply.code(201).send(await deps.policies.create(req.body)),
  );
  app.patch(
    '/api/policies/:id',
    { preHandler: needs('admin'), schema: { summary: 'Change a policy', params: idParam, body: policyBody } },
    async (req) => deps.policies.update(await policyId(deps, req.params.id), req.body),
  );
  app.delete(
    '/api/policies/:id',
    { preHandler: needs('admin'), schema: { summary: 'Delete a policy', params: idParam } },
    async (req, reply) => {
      await deps.policies.delete(await policyId(deps, req.params.id));
      return reply.code(204).send();
    },
  );
  app.post(
    '/api/policies/:id/run',
    { preHandler: needs('operator'), schema: { summary: 'Run a policy now', params: idParam } },
    async (req, reply) => {
      const id = await policyId(deps, req.params.id);
      const runs = await deps.orchestrator.firePolicy(id, new Date().toISOString());
      return reply.code(202).send(runs);
    },
  );

  // Requests held open (run waits, proxy claims) end when the server stops.
  const stopping = new AbortController();
  app.addHook('preClose', async () => stopping.abort());

  runRoutes(app, { deps, needs });
  // With `waitMs`, a long poll: the answer comes when the run leaves `step` (the step the client
  // last saw), so `goldsnap runs start --wait` learns the end of a run as it happens instead of at
  // its next poll. Without `step`, the wait is for a step other than the one the run is at now.
  app.get(
    '/api/runs/:id',
    {
      preHandler: needs('viewer'),
      schema: {
        summary: 'One run, with per-disk progress; with waitMs, once it has left `step`',
        params: idParam,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            waitMs: { type: 'integer', minimum: 0, maximum: RUN_WAIT_MAX_MS },
            step: { type: 'string', enum: [...RunSteps] },
          },
        },
      },
    },
    async (req, reply) => {
      const id = await runId(deps, req.params.id);
      const { waitMs, step } = req.query as { waitMs?: number; step?: string };
      if (!waitMs) return deps.runs.getRun(id);
      return heldOpen(reply, stopping.signal, (signal) => deps.runs.nextStep(id, step, waitMs, signal));
    },
  );
  app.post(
    '/api/runs',
    {
      preHandler: needs('operator'),
      schema: {
        summary: 'Back up one VM now',
        body: {
          type: 'object',
          required: ['vmId'],
          additionalProperties: false,
          properties: { vmId: { type: 'string' } },
        },
      },
    },
    async (req, reply) => {
      const vm = await vmToBackUp(deps, req.body.vmId);
      const { run, created } = await deps.orchestrator.startRun(vm);
      if (!created) return reply.code(409).send({ error: `VM ${vm.name} already has a run going: ${run.id}`, run });
      return reply.code(202).send(run);
    },
  );

  app.get(
    '/api/recovery-points',
    {
      preHandler: needs('viewer'),
      schema: {
        summary: 'Recovery points, newest first, filtered and paged (total in X-Total-Count)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            vm: { type: 'string', minLength: 1, description: 'VM id or name' },
            vmId: { type: 'string', minLength: 1, description: 'older name of vm' },
            ...timeRangeQuery,
            q: {
              type: 'string',
              minLength: 1,
              maxLength: 200,
              description: 'text in the VM name, point id or a disk name',
            },
            ...pageQuery,
          },
        },
      },
    },
    async (req, reply) => {
      const { vmId, ...q } = req.query;
      const { points, total } = await queryRecoveryPoints(deps.runs.db, { ...q, vm: q.vm ?? vmId });
      pageHeaders(req, reply, '/api/recovery-points', points.length, total);
      return points;
    },
  );
  app.get(
    '/api/golden-snapshots',
    { preHandler: needs('viewer'), schema: { summary: 'The golden snapshot of each disk' } },
    async () => deps.runs.listGolden(),
  );

  app.post(
    '/api/restores',
    {
      preHandler: needs('operator'),
      schema: {
        summary: 'Restore a recovery point to new disks, and optionally a new VM, in any region',
        body: {
          type: 'object',
          required: ['recoveryPointId', 'name'],
          additionalProperties: false,
          properties: {
            recoveryPointId: { type: 'string', minLength: 4 },
            name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' },
            region: { type: 'string' },
            resourceGroup: { type: 'string' },
            disks: { type: 'array', items: { type: 'string' } },
            createVm: { type: 'boolean' },
            networkInterfaceId: { type: 'string', pattern: '^/subscriptions/' },
            subnetId: { type: 'string' },
            vmSize: { type: 'string' },
            subscriptionId: { type: 'string' },
          },
        },
      },
    },
    async (req, reply) => {
      const { body } = req;
      const matches = await deps.runs.recoveryPointsByPrefix(body.recoveryPointId.toLowerCase());
      if (matches.length !== 1) {
        return reply.code(matches.length ? 400 : 404).send({
          error: matches.length
            ? `recovery point prefix ${body.recoveryPointId} is ambiguous`
            : `no recovery point ${body.recoveryPointId}`,
        });
      }
      const point = matches[0];
      const vm = await deps.runs.getVm(point.vmId);
      // Everything is checked, the target names included, before anything is created.
      const { recoveryPointId: _, ...input } = body;
      const plan = await planRestore(
        input,
        { pointId: point.id, point: point.point, ...(vm ? { vmRegion: vm.region } : {}) },
        { cloud: deps.cloud, policies: await deps.policies.list() },
      );
      const job = await deps.orchestrator.startRestore(plan);
      return reply.code(202).send(restoreView(job));
    },
  );
  app.get(
    '/api/restores',
    {
      preHandler: needs('viewer'),
      schema: {
        summary: 'Restores, newest first, filtered and paged (total in X-Total-Count)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', enum: ['queued', 'running', 'done', 'failed'] },
            ...timeRangeQuery,
            q: { type: 'string', minLength: 1, maxLength: 200, description: 'text in the request or the error' },
            ...pageQuery,
          },
        },
      },
    },
    async (req, reply) => {
      const { ids, total } = await queryRestoreIds(deps.runs.db, req.query);
      const jobs = await Promise.all(ids.map((id) => deps.queue.get(id)));
      pageHeaders(req, reply, '/api/restores', ids.length, total);
      return jobs.filter((j) => j !== undefined).map(restoreView);
    },
  );
  app.get(
    '/api/restores/:id',
    { preHandler: needs('viewer'), schema: { summary: 'Progress and result of a restore', params: idParam } },
    async (req) => {
      const { id } = req.params;
      const job = /^\d{1,15}$/.test(id) ? await deps.queue.get(Number(id)) : undefined;
      if (job?.kind !== 'restore') throw new NotFoundError('restore', id);
      return restoreView(job);
    },
  );

  app.get(
    '/api/proxies',
    { preHandler: needs('viewer'), schema: { summary: 'Data proxies running now, and the work queued per region' } },
    async () => ({
      proxies: deps.launcher.list(),
      queues: await transferQueueDepths(deps.queue),
      crossRegion: crossRegionTotals,
      claims: { ...claimStats },
    }),
  );

  app.post(
    '/api/tokens',
    {
      preHandler: needs('admin'),
      schema: {
        summary: 'Create an API token (shown once)',
        body: {
          type: 'object',
          required: ['name', 'role'],
          additionalProperties: false,
          properties: { name: { type: 'string', minLength: 1 }, role: { type: 'string', enum: [...Roles] } },
        },
      },
    },
    async (req, reply) => {
      const { name, role } = req.body;
      return reply.code(201).send(await deps.tokens.create(name, role));
    },
  );

  if (deps.proxyCredentials) registerProxyCredentialRoutes(app, deps.proxyCredentials, needs);
  await registerFileRoutes(app, deps, needs);
  tokenRoutes(app, { deps, needs });
  auditRoutes(app, { deps, needs });
  alertRoutes(app, { deps, needs });
  checkRoutes(app, { deps, needs });
  metricsRoutes(app, { deps, needs });
  oidcRoutes(app, { deps, needs });

  // Data proxies. These routes have no schema (hidden, and what proxies send is not validated
  // here): their route generics say what the proxy protocol sends.
  // A claim with `waitMs` is a long poll: held until a job of the region is queued (or the wait
  // is over), so an idle proxy costs one request per PROXY_CLAIM_WAIT_MS, not four a second. Held
  // claims end when the proxy hangs up or the server stops.
  app.post<{ Body: { region: string; workerId: string; waitMs?: number } }>(
    '/internal/proxy/claim',
    { preHandler: proxyOnly, schema: { hide: true } },
    async (req, reply) => {
      const { region, workerId } = req.body;
      const waitMs = Math.min(Math.max(0, Number(req.body.waitMs) || 0), PROXY_CLAIM_WAIT_MS);
      claimStats.requests += 1;
      claimStats.waiting += 1;
      try {
        return await heldOpen(reply, stopping.signal, async (signal, hungUp) => {
          const work = await deps.orchestrator.claimForProxy(region, workerId, { waitMs, signal });
          if (work && hungUp.aborted) {
            // Nobody will do it: give it back now rather than when its lease runs out.
            await deps.orchestrator.proxyFail(work.jobId, workerId, 'the proxy hung up before it got the job');
            return null;
          }
          return work ?? null;
        });
      } finally {
        claimStats.waiting -= 1;
      }
    },
  );
  app.post<{ Params: { id: string }; Body: { workerId: string; progress: { doneBytes: number; totalBytes: number } } }>(
    '/internal/proxy/jobs/:id/heartbeat',
    { preHandler: proxyOnly, schema: { hide: true } },
    async (req) => {
      const { workerId, progress } = req.body;
      return { ok: await deps.orchestrator.proxyHeartbeat(Number(req.params.id), workerId, progress) };
    },
  );
  app.post<{ Params: { id: string }; Body: { workerId: string; result: unknown } }>(
    '/internal/proxy/jobs/:id/complete',
    { preHandler: proxyOnly, schema: { hide: true } },
    async (req) => {
      const { workerId, result } = req.body;
      return { ok: await deps.orchestrator.proxyComplete(Number(req.params.id), workerId, result) };
    },
  );
  app.post<{ Params: { id: string }; Body: { workerId: string; error: string } }>(
    '/internal/proxy/jobs/:id/fail',
    { preHandler: proxyOnly, schema: { hide: true } },
    async (req) => {
      const { workerId, error } = req.body;
      await deps.orchestrator.proxyFail(Number(req.params.id), workerId, error);
      return { ok: true };
    },
  );

  return app;
}

function restoreView(job: {
  id: number;
  state: string;
  payload: unknown;
  progress?: unknown;
  result?: unknown;
  lastError?: string;
  createdAt: string;
  updatedAt: string;
}) {
  return {
    id: String(job.id),
    state: job.state,
    request: job.payload,
    progress: job.progress ?? null,
    result: job.result ?? null,
    error: job.lastError ?? null,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
  };
}

async function policyId(deps: ApiDeps, idOrName: string): Promise<string> {
  const p = (await deps.policies.get(idOrName).catch(() => undefined)) ?? (await deps.policies.getByName(idOrName));
  if (!p) throw new NotFoundError('policy', idOrName);
  return p.id;
}

async function runId(deps: ApiDeps, idOrPrefix: string): Promise<string> {
  const matches = await deps.runs.runIdsByPrefix(idOrPrefix.toLowerCase());
  if (matches.includes(idOrPrefix)) return idOrPrefix;
  if (matches.length > 1)
    throw new InvalidInputError('id', `run prefix ${idOrPrefix} matches several runs: give more characters`);
  if (matches.length === 0) throw new NotFoundError('run', idOrPrefix);
  return matches[0];
}

/**
 * The VM that `wanted` names (its id, or its name), as the cloud has it now: a run snapshots the
 * disks the VM has at this moment. Given an id the catalog's inventory knows (the console's "back
 * up now"), that is one GET of the VM. A name, or an id the inventory does not know, takes the
 * subscriptions' whole listing, which also refreshes the inventory: only it can tell that a name
 * is now taken twice. At a thousand VMs the listing is many pages of ARM calls.
 */
async function vmToBackUp(deps: ApiDeps, wanted: string): Promise<CloudVm> {
  const known = await deps.runs.getVm(wanted);
  if (known) {
    try {
      const vm = await deps.cloud.getVm(known.id);
      await deps.runs.upsertVms([vm]);
      return vm;
    } catch {
      // Gone, or unreachable by its id: the listing below tells.
    }
  }
  const vms = await deps.orchestrator.refreshInventory();
  const byId = vms.find((v) => v.id.toLowerCase() === wanted.toLowerCase());
  const byName = vms.filter((v) => v.name === wanted);
  if (!byId && byName.length > 1)
    throw new InvalidInputError(
      'vmId',
      `${byName.length} VMs are named ${wanted} (in ${byName.map((v) => v.resourceGroup).join(', ')}): give the VM's id`,
    );
  const vm = byId ?? byName[0];
  if (!vm) throw new NotFoundError('VM', wanted);
  return vm;
}

/**
 * Runs a held request's wait with a signal that aborts when the server stops or the client hangs
 * up (`hungUp` tells the two apart).
 */
async function heldOpen<T>(
  reply: FastifyReply,
  stopping: AbortSignal,
  wait: (signal: AbortSignal, hungUp: AbortSignal) => Promise<T>,
): Promise<T> {
  const hungUp = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) hungUp.abort();
  };
  reply.raw.once('close', onClose);
  try {
    return await wait(AbortSignal.any([stopping, hungUp.signal]), hungUp.signal);
  } finally {
    reply.raw.off('close', onClose);
  }
}
