import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { prng } from '../support/disk-images.ts';

export interface FaultCounts {
  requests: number;
  errors503: number;
  droppedBefore: number;
  droppedAfter: number;
  delayed: number;
}

/**
 * An HTTP proxy in front of an object store that has bad days, seeded: some requests get a 503,
 * some connections are dropped before the request reaches the store, some after the store did it
 * (the client never learns that its PUT or DELETE happened), and some requests are slowed down.
 */
export async function startFaultyProxy(
  upstreamPort: number,
  seed: number,
  rates = { error503: 0.04, dropBefore: 0.02, dropAfter: 0.02, slow: 0.1 },
) {
  const rand = prng(seed);
  const counts: FaultCounts = { requests: 0, errors503: 0, droppedBefore: 0, droppedAfter: 0, delayed: 0 };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    counts.requests++;
    const roll = rand();
    const slow = rand() < rates.slow ? Math.floor(rand() * 300) : 0;
    if (slow) counts.delayed++;
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () =>
      setTimeout(() => {
        if (roll < rates.error503) {
          counts.errors503++;
          res.writeHead(503, {
            'content-type': 'application/xml',
            'x-ms-error-code': 'ServerBusy',
            'retry-after': '0',
          });
          res.end(
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
          );
          return;
        }
        if (roll < rates.error503 + rates.dropBefore) {
          counts.droppedBefore++;
          req.socket.destroy();
          return;
        }
        const dropAfter = roll < rates.error503 + rates.dropBefore + rates.dropAfter;
        const up = request(
          { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
          (upRes) => {
            if (dropAfter) {
              counts.droppedAfter++;
              upRes.resume();
              upRes.on('end', () => req.socket.destroy());
              return;
            }
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            upRes.pipe(res);
          },
        );
        up.on('error', () => req.socket.destroy());
        up.end(Buffer.concat(chunks));
      }, slow),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    counts,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
