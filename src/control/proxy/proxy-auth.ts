import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ProxyCredentialStore } from '../catalog/proxy-credentials.ts';
import { type ControlQueue, regionOfQueue, transferQueue } from '../jobs.ts';

export interface ProxyAuthDeps {
  credentials?: ProxyCredentialStore;
  /** GOLDSNAP_PROXY_TOKEN: the old secret shared by every region, still accepted when set (deprecated). */
  legacyToken?: string;
  queue: ControlQueue;
}

function equalSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The preHandler of /internal/proxy: the caller must present a live proxy credential, and may
 * only touch its region's work — claim from that region's queue, report on jobs of that queue.
 * A proxy that asks for another region gets 403 and a message that says which region it holds.
 */
export function proxyAuth(deps: ProxyAuthDeps) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    if (deps.legacyToken && equalSecret(token, deps.legacyToken)) return;
    const credential = token ? await deps.credentials?.verify(token) : undefined;
    if (!credential)
      return reply.code(401).send({
        error:
          'not a data proxy of this server: unknown or revoked proxy credential (make one with goldsnap proxies credentials create --region <region>)',
      });
    const refuse = (wanted: string) =>
      reply.code(403).send({
        error: `proxy credential ${credential.id.slice(0, 8)} (${credential.name}) is for region ${credential.region}; it cannot take work of region ${wanted}: run this proxy with --region ${credential.region}, or make a credential for ${wanted}`,
      });
    const body = (req.body ?? {}) as { region?: unknown };
    if (req.url.startsWith('/internal/proxy/claim')) {
      if (body.region !== credential.region) return refuse(String(body.region));
      return;
    }
    const jobId = /^\/internal\/proxy\/jobs\/(\d{1,15})\//.exec(req.url)?.[1];
    if (jobId) {
      const job = await deps.queue.get(Number(jobId));
      if (job && job.queue !== transferQueue(credential.region)) return refuse(regionOfQueue(job.queue) ?? job.queue);
    }
  };
}
