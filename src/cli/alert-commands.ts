import { Command, InvalidArgumentError } from 'commander';
import { type AlertChannel, type AlertDelivery, type AlertEvent, AlertKinds } from '../control/alerts/alert-store.ts';
import { ApiClient, common, out, table, type ClientOptions } from './control-commands.ts';
import { collect } from './parse.ts';

const kinds: readonly string[] = AlertKinds;

function eventArg(value: string, previous: string[] = []): string[] {
  if (!kinds.includes(value))
    throw new InvalidArgumentError(`"${value}" is not an alert kind: use ${kinds.join(', ')}`);
  return collect(value, previous);
}

/** `goldsnap alerts`: where alerts go (webhooks, e-mail) and what was raised. */
export function alertsCommand(): Command {
  const alerts = new Command('alerts').description(
    'alerts on failed runs, missed schedules, unprotected VMs and failed repository checks: channels and events',
  );
  common(alerts.command('channels').description('list alert channels')).action(async (opts: ClientOptions) => {
    const list = await new ApiClient(opts).call<AlertChannel[]>('GET', '/api/alerts/channels');
    out(opts, list, () =>
      table([
        ['NAME', 'KIND', 'TARGET', 'EVENTS'],
        ...list.map((c) => [c.name, c.kind, c.target, c.events.length ? c.events.join(', ') : 'all']),
      ]),
    );
  });
  const add = (kind: 'webhook' | 'email', what: string) =>
    common(
      alerts
        .command(`add-${kind} <name> <${what}>`)
        .description(
          kind === 'webhook'
            ? 'send alerts as JSON POSTs signed with HMAC-SHA256 (X-Goldsnap-Signature)'
            : 'send alerts by e-mail (the server needs GOLDSNAP_SMTP_URL)',
        ),
    )
      .option('--event <kind>', `only this kind (repeatable): ${kinds.join(', ')}`, eventArg)
      .action(async (name: string, target: string, opts: ClientOptions & { event?: string[] }) => {
        const r = await new ApiClient(opts).call<{ channel: AlertChannel; secret?: string }>(
          'POST',
          '/api/alerts/channels',
          { name, kind, target, ...(opts.event ? { events: opts.event } : {}) },
        );
        out(
          opts,
          r,
          () =>
            `alert channel ${r.channel.name} added${r.secret ? `; its signing secret, shown only now:\n${r.secret}` : ''}`,
        );
      });
  add('webhook', 'url');
  add('email', 'addresses');
  common(alerts.command('remove <channel>').description('remove an alert channel')).action(
    async (ref: string, opts: ClientOptions) => {
      const r = await new ApiClient(opts).call<{ deleted: AlertChannel }>(
        'DELETE',
        `/api/alerts/channels/${encodeURIComponent(ref)}`,
      );
      out(opts, r, () => `alert channel ${r.deleted.name} removed`);
    },
  );
  common(alerts.command('test <channel>').description('send a test alert to a channel now')).action(
    async (ref: string, opts: ClientOptions) => {
      const r = await new ApiClient(opts).call<{ sent: boolean }>(
        'POST',
        `/api/alerts/channels/${encodeURIComponent(ref)}/test`,
      );
      out(opts, r, () => `test alert sent to ${ref}`);
    },
  );
  common(
    alerts.command('events', { isDefault: true }).description('list alert events, newest first, and their deliveries'),
  ).action(async (opts: ClientOptions) => {
    const list = await new ApiClient(opts).call<Array<AlertEvent & { deliveries: AlertDelivery[] }>>(
      'GET',
      '/api/alerts/events',
    );
    out(opts, list, () =>
      table([
        ['WHEN', 'KIND', 'SUBJECT', 'DELIVERIES'],
        ...list.map((e) => [
          `${e.createdAt.replace('T', ' ').slice(0, 19)}Z`,
          e.kind,
          e.subject,
          e.deliveries
            .map(
              (d) =>
                `${d.channelName}: ${d.state}${d.state !== 'sent' && d.lastError ? ` (${d.attempts} tries, ${d.lastError})` : ''}`,
            )
            .join('; ') || '-',
        ]),
      ]),
    );
  });
  return alerts;
}
