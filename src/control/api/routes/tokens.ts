import { NotFoundError } from '../../catalog/errors.ts';
import type { ApiToken } from '../../catalog/tokens.ts';
import { type ApiServer, idParam } from '../schemas.ts';
import type { RouteContext } from './context.ts';
import { mentions, pageOf, pageQuery, textQuery } from './paging.ts';
import { Roles } from '../auth.ts';

/** API tokens: listed (never their secrets) and revoked by admins. Creating one is POST /api/tokens. */
export function tokenRoutes(app: ApiServer, { deps, needs }: RouteContext): void {
  app.get(
    '/api/tokens',
    {
      onRequest: needs('admin'),
      schema: {
        summary: 'API tokens (names, roles, ids; never the secrets), filtered and paged (total in X-Total-Count)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            role: { type: 'string', enum: [...Roles] },
            kind: { type: 'string', enum: ['lasting', 'session'], description: 'session: expires (console sign-ins)' },
            ...textQuery,
            ...pageQuery,
          },
        },
      },
    },
    async (req, reply) => {
      const { role, kind, q } = req.query;
      return pageOf(
        req,
        reply,
        '/api/tokens',
        await deps.tokens.list(),
        (t) =>
          (role === undefined || t.role === role) &&
          (kind === undefined || (kind === 'session') === Boolean(t.expiresAt)) &&
          mentions(q, t.name, t.id),
      );
    },
  );

  app.delete(
    '/api/tokens/:id',
    { onRequest: needs('admin'), schema: { summary: 'Revoke an API token (id, id prefix or name)', params: idParam } },
    async (req, reply) => {
      const token = findToken(await deps.tokens.list(), req.params.id);
      // Sign-in sessions expire: only lasting admin tokens keep the server manageable.
      const admins = (await deps.tokens.list()).filter((t) => t.role === 'admin' && !t.expiresAt);
      if (token.role === 'admin' && !token.expiresAt && admins.length === 1) {
        return reply.code(409).send({
          error: `token ${token.name} is the last admin token: create another admin token first, or nobody could manage tokens`,
        });
      }
      await deps.tokens.revoke(token.id);
      return reply.code(200).send({ revoked: token });
    },
  );
}

function findToken(tokens: ApiToken[], ref: string): ApiToken {
  const exact = tokens.find((t) => t.id === ref);
  if (exact) return exact;
  const byName = tokens.filter((t) => t.name === ref);
  const byPrefix = tokens.filter((t) => t.id.startsWith(ref));
  const matches = byName.length ? byName : byPrefix;
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1)
    throw new NotFoundError('single token matching', `${ref} (${matches.length} match: give the id)`);
  throw new NotFoundError('token', ref);
}
