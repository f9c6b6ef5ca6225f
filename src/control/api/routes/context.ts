import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiToken } from '../../catalog/tokens.ts';
import type { ApiDeps } from '../api.ts';
import type { Role } from '../auth.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API token that authenticated the request (set by the role check). */
    caller?: ApiToken;
  }
}

/** The pre-handler that admits requests whose token has at least `role`. */
export type RoleGuard = (role: Role) => (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/** What a route module gets from buildApi: the server's stores and services, and the role check. */
export interface RouteContext {
  deps: ApiDeps;
  needs: RoleGuard;
}
