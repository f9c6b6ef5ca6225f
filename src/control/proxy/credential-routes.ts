import type { FastifyReply, FastifyRequest } from 'fastify';
import { NotFoundError } from '../catalog/policies.ts';
import type { ProxyCredentialStore } from '../catalog/proxy-credentials.ts';
import type { Role } from '../api/auth.ts';
import { type ApiServer, prefixIdParam } from '../api/schemas.ts';

type Needs = (role: Role) => (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/**
 * /api/proxy-credentials: admins make a credential for a proxy they run themselves in a region
 * (the secret is shown once), list them, and revoke one (its proxy is refused from its next call).
 */
export function registerProxyCredentialRoutes(app: ApiServer, store: ProxyCredentialStore, needs: Needs): void {
  app.get(
    '/api/proxy-credentials',
    {
      preHandler: needs('admin'),
      schema: {
        summary: 'Data proxy credentials (one region each)',
        querystring: { type: 'object', properties: { all: { type: 'boolean' } } },
      },
    },
    async (req) => store.list({ includeRevoked: Boolean(req.query.all) }),
  );

  app.post(
    '/api/proxy-credentials',
    {
      preHandler: needs('admin'),
      schema: {
        summary: 'Make a credential for a data proxy of one region (the secret is shown once)',
        body: {
          type: 'object',
          required: ['region'],
          additionalProperties: false,
          properties: { region: { type: 'string' }, name: { type: 'string', minLength: 1, maxLength: 100 } },
        },
      },
    },
    async (req, reply) => {
      const { region, name } = req.body;
      return reply.code(201).send(await store.create(region, name ?? `proxy ${region}`, 'admin'));
    },
  );

  app.delete(
    '/api/proxy-credentials/:id',
    {
      preHandler: needs('admin'),
      schema: { summary: 'Revoke a data proxy credential', params: prefixIdParam },
    },
    async (req) => {
      const { id } = req.params;
      const revoked = await store.revoke(id);
      if (!revoked) throw new NotFoundError('proxy credential', id);
      return revoked;
    },
  );
}
