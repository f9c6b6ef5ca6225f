import { queryRuns, summarizeRun, type RunFilter } from '../../catalog/run-query.ts';
import type { ApiServer } from '../schemas.ts';
import type { RouteContext } from './context.ts';

const runsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'string', enum: ['running', 'finished', 'succeeded', 'failed'] },
    vm: { type: 'string', minLength: 1, description: 'VM id or name' },
    policy: { type: 'string', minLength: 1, description: 'policy id or name' },
    kind: { type: 'string', enum: ['full', 'incremental'] },
    trigger: { type: 'string', enum: ['policy', 'user'] },
    since: { type: 'string', format: 'date-time' },
    until: { type: 'string', format: 'date-time' },
    q: { type: 'string', minLength: 1, maxLength: 200, description: 'text in the VM name, run id or error' },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    offset: { type: 'integer', minimum: 0, default: 0 },
    // Older names, kept for existing clients.
    vmId: { type: 'string', minLength: 1 },
    active: { type: 'boolean' },
  },
} as const;

/**
 * The run history: newest first, filtered and paged. The body stays an array of runs (each with a
 * derived `summary`); the number of matches is in `X-Total-Count`, the next page in `Link`.
 */
export function runRoutes(app: ApiServer, { deps, needs }: RouteContext): void {
  app.get(
    '/api/runs',
    {
      onRequest: needs('viewer'),
      schema: {
        summary: 'Backup runs, newest first, filtered and paged (total in X-Total-Count)',
        querystring: runsQuery,
      },
    },
    async (req, reply) => {
      const { vmId, active, ...q } = req.query;
      const filter: RunFilter = {
        ...q,
        vm: q.vm ?? vmId,
        status: q.status ?? (active === undefined ? undefined : active ? 'running' : 'finished'),
      };
      const { runs, total } = await queryRuns(deps.runs.db, filter);
      reply.header('x-total-count', String(total));
      if (q.offset + runs.length < total) {
        const next = new URLSearchParams(
          Object.entries({ ...req.query, offset: q.offset + runs.length }).map(([k, v]) => [k, String(v)]),
        );
        reply.header('link', `</api/runs?${next}>; rel="next"`);
      }
      return runs.map((run) => ({ ...run, summary: summarizeRun(run) }));
    },
  );
}
