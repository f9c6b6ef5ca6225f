import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from 'fastify';

/**
 * The API server as route modules get it: typed by @fastify/type-provider-json-schema-to-ts, so a
 * handler's req.params, req.query and req.body have the types of the route's JSON schemas (declared
 * `as const`), the very schemas requests are validated against (validation.ts). No casts.
 */
export type ApiServer = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  JsonSchemaToTsProvider
>;

/** `:id` of a route: an id, an id prefix or a name, as the route says. */
export const idParam = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', minLength: 1 } },
} as const;

/** `:id` of a recovery point or a proxy credential: an id or a prefix of at least 4 characters. */
export const prefixIdParam = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 4 } },
} as const;
