import { readFile } from 'node:fs/promises';
import type { FastifyReply } from 'fastify';
import type { ApiServer } from '../schemas.ts';

/** Where `npm run build:console` (run by `npm start` and `npm test`) writes the console. */
const CONSOLE_DIR = new URL('../../../../dist/console/', import.meta.url);

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/**
 * The web console (React, built by Vite): a client of this API like the CLI, served as static
 * files under a strict content security policy (no inline script or style).
 */
export function consoleRoutes(app: ApiServer): void {
  const send = (reply: FastifyReply, body: Buffer | string, type: string, cache: string) =>
    reply
      .header('content-type', type)
      .header('cache-control', cache)
      .header(
        'content-security-policy',
        "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
      )
      .header('x-content-type-options', 'nosniff')
      .send(body);

  app.get('/', { schema: { hide: true } }, async (_req, reply) => {
    const html = await readFile(new URL('index.html', CONSOLE_DIR)).catch(() => undefined);
    if (!html) {
      return send(
        reply.code(503),
        '<!doctype html><title>Goldsnap</title><p>The web console is not built: run <code>npm run build:console</code> (npm start and npm test do it), then reload.</p>',
        'text/html; charset=utf-8',
        'no-store',
      );
    }
    return send(reply, html, 'text/html; charset=utf-8', 'no-cache');
  });

  app.get(
    '/assets/:name',
    {
      schema: {
        hide: true,
        params: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' } },
        },
      },
    },
    async (req, reply) => {
      const { name } = req.params;
      const type = TYPES[name.slice(name.lastIndexOf('.'))];
      const body =
        type && !name.startsWith('.')
          ? await readFile(new URL(`assets/${name}`, CONSOLE_DIR)).catch(() => undefined)
          : undefined;
      if (!body) return reply.code(404).send({ error: `no console asset ${name}` });
      // Vite names assets by their content hash: they never change under one name.
      return send(reply, body, type!, 'public, max-age=31536000, immutable');
    },
  );
}
