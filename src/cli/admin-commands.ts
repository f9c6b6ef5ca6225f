import { Command, InvalidArgumentError } from 'commander';
import type { AuditEntry } from '../control/catalog/audit-log.ts';
import type { ApiToken } from '../control/catalog/tokens.ts';
import { ApiClient, common, out, table, type ClientOptions } from './control-commands.ts';
import { countArg } from './parse.ts';

const roles = ['viewer', 'operator', 'admin'];

function roleArg(value: string): string {
  if (!roles.includes(value)) throw new InvalidArgumentError(`"${value}" is not a role: use ${roles.join(', ')}`);
  return value;
}

function when(iso: string): string {
  return `${iso.replace('T', ' ').slice(0, 19)}Z`;
}

/** `goldsnap tokens`: API tokens for people and automation (admin only). */
export function tokensCommand(): Command {
  const tokens = new Command('tokens').description('API tokens: list, create, revoke (needs an admin token)');
  common(
    tokens.command('list', { isDefault: true }).description('list tokens (names, roles, ids; never their secrets)'),
  ).action(async (opts: ClientOptions) => {
    const list = await new ApiClient(opts).call<ApiToken[]>('GET', '/api/tokens?limit=1000');
    out(opts, list, () =>
      table([
        ['ID', 'NAME', 'ROLE', 'CREATED'],
        ...list.map((t) => [t.id.slice(0, 8), t.name, t.role, when(t.createdAt)]),
      ]),
    );
  });
  common(tokens.command('create <name>').description('create a token; its secret is printed once, keep it'))
    .requiredOption('--role <role>', `what it may do: ${roles.join(', ')}`, roleArg)
    .action(async (name: string, opts: ClientOptions & { role: string }) => {
      const r = await new ApiClient(opts).call<{ token: string; info: ApiToken }>('POST', '/api/tokens', {
        name,
        role: opts.role,
      });
      out(
        opts,
        r,
        () =>
          `token ${r.info.name} (${r.info.role}, id ${r.info.id.slice(0, 8)}) created; its secret, shown only now:\n${r.token}`,
      );
    });
  common(tokens.command('revoke <token>').description('revoke a token (id, id prefix or name)')).action(
    async (ref: string, opts: ClientOptions) => {
      const r = await new ApiClient(opts).call<{ revoked: ApiToken }>(
        'DELETE',
        `/api/tokens/${encodeURIComponent(ref)}`,
      );
      out(opts, r, () => `token ${r.revoked.name} (${r.revoked.role}, id ${r.revoked.id.slice(0, 8)}) revoked`);
    },
  );
  return tokens;
}

/** `goldsnap audit`: the changes made through the API, CLI and console (admin only). */
export function auditCommand(): Command {
  return common(
    new Command('audit').description('show the audit log: who changed what, when, from where (needs an admin token)'),
  )
    .option('--actor <name>', 'only changes made with this token name')
    .option('--action <text>', 'only actions containing this text, e.g. policies')
    .option('--since <time>', 'only changes at or after this time (ISO 8601)')
    .option('--until <time>', 'only changes before this time (ISO 8601)')
    .option('--search <text>', 'only changes whose actor, action, object or address contains this text')
    .option('--refused', 'only requests that were refused (status 400 and up)')
    .option('--limit <n>', 'how many, newest first', countArg, 50)
    .option('--offset <n>', 'skip this many first', countArg, 0)
    .action(
      async (
        opts: ClientOptions & {
          actor?: string;
          action?: string;
          since?: string;
          until?: string;
          search?: string;
          refused?: boolean;
          limit: number;
          offset: number;
        },
      ) => {
        const api = new ApiClient(opts);
        const q = new URLSearchParams({
          limit: String(opts.limit),
          offset: String(opts.offset),
          ...(opts.actor ? { actor: opts.actor } : {}),
          ...(opts.action ? { action: opts.action } : {}),
          ...(opts.since ? { since: opts.since } : {}),
          ...(opts.until ? { until: opts.until } : {}),
          ...(opts.search ? { q: opts.search } : {}),
          ...(opts.refused ? { outcome: 'refused' } : {}),
        });
        const list = await api.call<AuditEntry[]>('GET', `/api/audit?${q}`);
        const total = Number(api.lastHeaders?.get('x-total-count') ?? list.length);
        out(opts, list, () =>
          [
            table([
              ['WHEN', 'WHO', 'ROLE', 'ACTION', 'TARGET', 'STATUS', 'FROM', 'VIA'],
              ...list.map((e) => [
                when(e.at),
                e.actor ?? '-',
                e.actorRole ?? '-',
                e.action,
                e.target ?? '',
                String(e.status),
                e.ip ?? '',
                e.via ?? '',
              ]),
            ]),
            list.length ? `${opts.offset + 1}–${opts.offset + list.length} of ${total}` : `none of ${total}`,
          ].join('\n'),
        );
      },
    );
}
