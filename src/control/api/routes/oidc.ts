import type { FastifyInstance, FastifyReply } from 'fastify';
import { oidcSettingsFromEnv, OidcSignIn, SignInError } from '../../auth/oidc.ts';
import { AuditLog } from '../../catalog/audit-log.ts';
import type { RouteContext } from './context.ts';
import { errorMessage } from '../../../util/errors.ts';

/** How long a console sign-in lasts. */
const SESSION_MS = 8 * 3600_000;

function page(reply: FastifyReply, status: number, message: string) {
  const text = message.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', "default-src 'none'")
    .send(`<!doctype html><title>Goldsnap sign-in</title><p>${text}</p><p><a href="/">Back to the console</a></p>`);
}

/**
 * OpenID Connect sign-in for the console (src/control/auth/oidc.ts): /auth/oidc/login sends the
 * browser to the provider; /auth/oidc/callback turns the answer into an API token of the role the
 * user's groups give, lasting 8 hours, named `oidc:<user>` (listed and revocable like any token),
 * and hands it to the console in the URL fragment, which browsers never send to a server.
 */
export function oidcRoutes(app: FastifyInstance, { deps }: RouteContext): void {
  const settings = oidcSettingsFromEnv();
  const oidc = settings && new OidcSignIn(settings, deps.runs.db);
  const audit = new AuditLog(deps.runs.db);
  const redirectUri = (host: string, protocol: string) =>
    process.env.GOLDSNAP_OIDC_REDIRECT_URI || `${protocol}://${host}/auth/oidc/callback`;

  app.get(
    '/api/auth/methods',
    { schema: { security: [], summary: 'How one can sign in to the console' } },
    async () => ({ token: true, oidc: Boolean(oidc) }),
  );
  if (!oidc) return;

  app.get('/auth/oidc/login', { schema: { hide: true } }, async (req, reply) => {
    try {
      return reply.redirect((await oidc.startLogin(redirectUri(req.host, req.protocol))).href);
    } catch (err) {
      return page(reply, 502, errorMessage(err));
    }
  });

  app.get('/auth/oidc/callback', { schema: { hide: true } }, async (req, reply) => {
    const url = new URL(req.url, redirectUri(req.host, req.protocol));
    const error = url.searchParams.get('error');
    if (error)
      return page(
        reply,
        400,
        `The provider refused the sign-in: ${error} ${url.searchParams.get('error_description') ?? ''}`,
      );
    try {
      const who = await oidc.finishLogin(url);
      const { token, info } = await deps.tokens.create(`oidc:${who.name}`, who.role, {
        expiresAt: new Date(Date.now() + SESSION_MS),
      });
      await audit.record({
        actor: info.name,
        actorRole: info.role,
        tokenId: info.id,
        action: 'SIGN-IN oidc',
        target: who.name,
        details: {},
        status: 200,
        ip: req.ip,
        via: 'console',
      });
      return reply.redirect(`/#/signin/${encodeURIComponent(token)}`);
    } catch (err) {
      return page(reply, err instanceof SignInError ? err.status : 502, `Sign-in failed: ${errorMessage(err)}`);
    }
  });
}
