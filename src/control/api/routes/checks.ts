import { NotFoundError } from '../../catalog/errors.ts';
import { type ApiServer, idParam } from '../schemas.ts';
import type { RouteContext } from './context.ts';
import { pageHeaders, pageQuery, timeRangeQuery } from './paging.ts';

/** Repository checks the server ran (on its schedule or by hand), and starting one now. */
export function checkRoutes(app: ApiServer, { deps, needs }: RouteContext): void {
  const checker = deps.checker;
  if (!checker) return;
  app.get(
    '/api/checks',
    {
      onRequest: needs('viewer'),
      schema: {
        summary: 'Repository checks, newest first, filtered and paged (total in X-Total-Count)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', enum: ['running', 'passed', 'failed'] },
            ...timeRangeQuery,
            ...pageQuery,
          },
        },
      },
    },
    async (req, reply) => {
      const { checks, total } = await checker.store.list(req.query);
      pageHeaders(req, reply, '/api/checks', checks.length, total);
      return checks;
    },
  );
  app.get(
    '/api/checks/:id',
    { onRequest: needs('viewer'), schema: { summary: 'One repository check and what it found', params: idParam } },
    async (req) => {
      const check = await checker.store.get(req.params.id);
      if (!check) throw new NotFoundError('repository check', req.params.id);
      return check;
    },
  );
  app.post(
    '/api/checks',
    {
      onRequest: needs('admin'),
      schema: {
        summary: 'Check the repository now (answers at once; follow GET /api/checks/:id)',
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            readDataPercent: {
              type: 'number',
              minimum: 0,
              maximum: 100,
              description: 'share of packs read whole and re-hashed (default: the server setting)',
            },
          },
        },
      },
    },
    async (req, reply) => reply.code(202).send(await checker.startCheck(req.body?.readDataPercent)),
  );
}
