import { Command } from 'commander';
import type { ProxyCredential } from '../control/catalog/proxy-credentials.ts';
import { ApiClient, common, out, table, type ClientOptions } from './control-commands.ts';

/**
 * (Options are read with their parent's: `proxies` takes --json, --server, --token and --data too.)
 *
 * `goldsnap proxies credentials create|list|revoke`: the credentials of data proxies run by hand in
 * a region (the server makes and revokes its own proxies' credentials by itself).
 */
export function proxyCredentialsCommand(): Command {
  const credentials = new Command('credentials').description('per-region credentials of data proxies (admin)');

  credentials.addCommand(
    common(new Command('create'))
      .description(
        'make a credential for a data proxy of one region; its secret is printed once (GOLDSNAP_PROXY_TOKEN of that proxy)',
      )
      .requiredOption('--region <region>', 'the only region whose work the proxy may take')
      .option('--name <name>', 'what the credential is for (e.g. the machine)')
      .action(async (_: unknown, cmd: Command) => {
        const opts = cmd.optsWithGlobals<ClientOptions & { region: string; name?: string }>();
        const made = await new ApiClient(opts).call<{ token: string; credential: ProxyCredential }>(
          'POST',
          '/api/proxy-credentials',
          { region: opts.region, ...(opts.name ? { name: opts.name } : {}) },
        );
        out(opts, made, () =>
          [
            `proxy credential ${made.credential.id} for ${made.credential.region} (${made.credential.name}); its secret, shown only now:`,
            made.token,
            `run the proxy with GOLDSNAP_PROXY_TOKEN=<that secret> goldsnap proxy --region ${made.credential.region}`,
          ].join('\n'),
        );
      }),
  );

  credentials.addCommand(
    common(new Command('list'))
      .description('proxy credentials in force (--all: also revoked ones)')
      .option('--all', 'include revoked credentials')
      .action(async (_: unknown, cmd: Command) => {
        const opts = cmd.optsWithGlobals<ClientOptions & { all?: boolean }>();
        const list = await new ApiClient(opts).call<ProxyCredential[]>(
          'GET',
          `/api/proxy-credentials${opts.all ? '?all=true' : ''}`,
        );
        out(opts, list, () =>
          table([
            ['ID', 'REGION', 'NAME', 'ISSUED BY', 'CREATED', 'REVOKED'],
            ...list.map((c) => [
              c.id.slice(0, 8),
              c.region,
              c.name,
              c.issuedBy,
              c.createdAt.slice(0, 19),
              c.revokedAt?.slice(0, 19) ?? '',
            ]),
          ]),
        );
      }),
  );

  credentials.addCommand(
    common(new Command('revoke'))
      .description('revoke a proxy credential: its proxy is refused from its next call')
      .argument('<id>', 'credential id or a unique prefix')
      .action(async (id: string, _: unknown, cmd: Command) => {
        const opts = cmd.optsWithGlobals<ClientOptions>();
        const revoked = await new ApiClient(opts).call<ProxyCredential>(
          'DELETE',
          `/api/proxy-credentials/${encodeURIComponent(id)}`,
        );
        out(opts, revoked, () => `proxy credential ${revoked.id} (${revoked.region}, ${revoked.name}) revoked`);
      }),
  );

  return credentials;
}
