import type { FastifyInstance } from 'fastify';
import { buildMetrics } from '../../metrics/metrics.ts';
import type { RouteContext } from './context.ts';

/** GET /metrics in Prometheus' text format; scrape it with a viewer token (bearer_token in Prometheus). */
export function metricsRoutes(app: FastifyInstance, { deps, needs }: RouteContext): void {
  const registry = buildMetrics({
    db: deps.runs.db,
    runs: deps.runs,
    policies: deps.policies,
    queue: deps.queue,
    launcher: deps.launcher,
    ...(deps.repo ? { repository: deps.repo.backend } : {}),
  });
  app.get(
    '/metrics',
    {
      onRequest: needs('viewer'),
      schema: { summary: 'Prometheus metrics: runs, durations, bytes, proxies, queues, repository size' },
    },
    async (_req, reply) => reply.header('content-type', registry.contentType).send(await registry.metrics()),
  );
}
