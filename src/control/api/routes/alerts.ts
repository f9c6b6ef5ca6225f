import { AlertKinds } from '../../alerts/alert-store.ts';
import { type ApiServer, idParam } from '../schemas.ts';
import type { RouteContext } from './context.ts';
import { errorMessage } from '../../../util/errors.ts';

/** Alert channels (webhooks, e-mail) configured by admins, and the events raised with their deliveries. */
export function alertRoutes(app: ApiServer, { deps, needs }: RouteContext): void {
  const alerter = deps.alerter;
  if (!alerter) return;
  const store = alerter.store;

  app.get(
    '/api/alerts/channels',
    { onRequest: needs('admin'), schema: { summary: 'Alert channels (never their signing secrets)' } },
    async () => store.listChannels(),
  );

  app.post(
    '/api/alerts/channels',
    {
      onRequest: needs('admin'),
      schema: {
        summary: "Add an alert channel; a webhook's signing secret is shown once",
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'kind', 'target'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 100 },
            kind: { type: 'string', enum: ['webhook', 'email'] },
            target: {
              type: 'string',
              minLength: 3,
              maxLength: 2000,
              description: 'webhook URL, or e-mail addresses separated by commas',
            },
            events: {
              type: 'array',
              items: { type: 'string', enum: [...AlertKinds] },
              uniqueItems: true,
              description: 'kinds sent there (default: all)',
            },
            secret: {
              type: 'string',
              minLength: 16,
              maxLength: 200,
              description: 'webhook signing secret (default: generated)',
            },
          },
        },
      },
    },
    async (req, reply) => {
      return reply.code(201).send(await store.createChannel(req.body));
    },
  );

  app.delete(
    '/api/alerts/channels/:id',
    { onRequest: needs('admin'), schema: { summary: 'Remove an alert channel (id or name)', params: idParam } },
    async (req) => ({ deleted: await store.deleteChannel(req.params.id) }),
  );

  app.post(
    '/api/alerts/channels/:id/test',
    { onRequest: needs('admin'), schema: { summary: 'Send a test alert to a channel now', params: idParam } },
    async (req, reply) => {
      try {
        await alerter.sendTest(req.params.id);
        return { sent: true };
      } catch (err) {
        if ((err as Error).name === 'NotFoundError') throw err;
        return reply.code(502).send({ error: `the test alert was not delivered: ${errorMessage(err)}` });
      }
    },
  );

  app.get(
    '/api/alerts/events',
    {
      onRequest: needs('viewer'),
      schema: {
        summary: 'Alert events, newest first, with their deliveries',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
        },
      },
    },
    async (req) => store.listEvents(req.query.limit),
  );
}
