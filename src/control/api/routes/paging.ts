import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Paging and filtering shared by every list route: `limit` and `offset` in the query string, the
 * number of matches in `X-Total-Count`, the next page in `Link: <…>; rel="next"`. The body stays
 * an array, so clients that read one page keep working.
 */
export const pageQuery = {
  limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  offset: { type: 'integer', minimum: 0, default: 0 },
} as const;

/** `since` (inclusive) and `until` (exclusive), ISO 8601 instants. */
export const timeRangeQuery = {
  since: { type: 'string', format: 'date-time' },
  until: { type: 'string', format: 'date-time' },
} as const;

/** `q`: text searched for in what the route says. */
export const textQuery = { q: { type: 'string', minLength: 1, maxLength: 200 } } as const;

/** Sets X-Total-Count, and Link to the next page when there is one. */
export function pageHeaders(
  req: FastifyRequest,
  reply: FastifyReply,
  path: string,
  returned: number,
  total: number,
): void {
  const query = req.query as Record<string, unknown> & { offset?: number };
  const offset = query.offset ?? 0;
  reply.header('x-total-count', String(total));
  if (offset + returned < total) {
    const next = new URLSearchParams(
      Object.entries({ ...query, offset: offset + returned })
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, String(v)]),
    );
    reply.header('link', `<${path}?${next}>; rel="next"`);
  }
}

/**
 * One page of a list held in memory (a few hundred VMs, policies or tokens): filtered by `keep`,
 * then cut to `limit` from `offset`, with the headers of pageHeaders.
 */
export function pageOf<T>(
  req: FastifyRequest,
  reply: FastifyReply,
  path: string,
  items: T[],
  keep: (item: T) => boolean,
): T[] {
  const { limit = 100, offset = 0 } = req.query as { limit?: number; offset?: number };
  const matching = items.filter(keep);
  const page = matching.slice(offset, offset + limit);
  pageHeaders(req, reply, path, page.length, matching.length);
  return page;
}

/** Whether `text` holds `q`, ignoring case (true when no q was given). */
export function mentions(q: string | undefined, ...texts: Array<string | null | undefined>): boolean {
  if (!q) return true;
  const needle = q.toLowerCase();
  return texts.some((t) => t?.toLowerCase().includes(needle));
}
