import type { FastifyRequest } from 'fastify';
import { AuditLog } from '../../catalog/audit-log.ts';
import type { ApiServer } from '../schemas.ts';
import type { RouteContext } from './context.ts';
import { pageHeaders, pageQuery, textQuery, timeRangeQuery } from './paging.ts';
import { errorMessage } from '../../../util/errors.ts';

const CHANGES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Which client sent a request: the CLI and the console say so in their user agent. */
function via(req: FastifyRequest): string | null {
  const ua = req.headers['user-agent'] ?? '';
  if (ua.startsWith('goldsnap-cli')) return 'cli';
  if (req.headers['x-goldsnap-client'] === 'console') return 'console';
  return ua ? ua.slice(0, 120) : null;
}

/**
 * The audit log: every change requested through /api (so through the CLI and the console too) is
 * recorded once answered, accepted or refused, with the caller's token name and role, the route,
 * the object, the body without secrets, the status and the client address. Admins read it.
 */
export function auditRoutes(app: ApiServer, { deps, needs }: RouteContext): void {
  const audit = new AuditLog(deps.runs.db);
  app.addHook('onResponse', async (req, reply) => {
    if (!CHANGES.has(req.method) || !req.url.startsWith('/api/')) return;
    const params = (req.params ?? {}) as Record<string, string>;
    try {
      // A request refused by validation never reached the role check: find its caller here.
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const caller = req.caller ?? (bearer ? await deps.tokens.verify(bearer) : undefined);
      await audit.record({
        actor: caller?.name ?? null,
        actorRole: caller?.role ?? null,
        tokenId: caller?.id ?? null,
        action: `${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]}`,
        target: params.id ?? Object.values(params)[0] ?? null,
        details: req.body && typeof req.body === 'object' ? (req.body as Record<string, unknown>) : {},
        status: reply.statusCode,
        ip: req.ip ?? null,
        via: via(req),
      });
    } catch (err) {
      // The change is made already; a lost audit line is reported, never turned into a failure.
      req.log.error({ err }, 'audit log: could not record a change');
      process.stderr.write(
        `${new Date().toISOString()} audit log: could not record ${req.method} ${req.url}: ${errorMessage(err)}\n`,
      );
    }
  });

  app.get(
    '/api/audit',
    {
      onRequest: needs('admin'),
      schema: {
        summary: 'The audit log: changes made through the API, newest first (total in X-Total-Count)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            actor: { type: 'string', minLength: 1, description: 'token name, exactly' },
            action: { type: 'string', minLength: 1, description: 'text in the action (PATCH, /api/policies…)' },
            outcome: { type: 'string', enum: ['ok', 'refused'] },
            ...textQuery,
            ...timeRangeQuery,
            ...pageQuery,
          },
        },
      },
    },
    async (req, reply) => {
      const { entries, total } = await audit.list(req.query);
      pageHeaders(req, reply, '/api/audit', entries.length, total);
      return entries;
    },
  );
}
