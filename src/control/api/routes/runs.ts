import { queryRuns, summarizeRun, type RunFilter } from '../../catalog/run-query.ts';
import type { ApiServer } from '../schemas.ts';
import type { RouteContext } from './context.ts';
import { pageHeaders, pageQuery, timeRangeQuery } from './paging.ts';

const runsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'string', enum: ['running', 'finished', 'succeeded', 'failed'] },
    vm: { type: 'string', minLength: 1, description: 'VM id or name' },
    policy: { type: 'string', minLength: 1, description: 'policy id or name' },
    kind: { type: 'string', enum: ['full', 'incremental'] },
    trigger: { type: 'string', enum: ['policy', 'user'] },
    ...timeRangeQuery,
    q: { type: 'string', minLength: 1, maxLength: 200, description: 'text in the VM name, run id or error' },
    ...pageQuery,
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
      pageHeaders(req, reply, '/api/runs', runs.length, total);
      return runs.map((run) => ({ ...run, summary: summarizeRun(run) }));
    },
  );
}
