import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import type { PolicySelection } from '../control/catalog/policies.ts';
import type { RunSummary } from '../control/catalog/run-query.ts';
import type { Run } from '../control/orchestrator/run-model.ts';
import { formatBytes } from '../repository/format.ts';
import { collect, countArg, keepOptions, retentionFrom, type KeepOptions } from './parse.ts';
import { formatDuration, ProgressBar } from './progress.ts';
import { proxyCredentialsCommand } from './proxy-credential-commands.ts';
import { formatInZone } from './time.ts';
import { errorMessage } from '../util/errors.ts';

export interface ClientOptions {
  server?: string;
  token?: string;
  data?: string;
  json?: boolean;
}

/** Talks to a running `goldsnap server` over its REST API. */
export class ApiClient {
  readonly url: string;
  private readonly token: string;
  /** Headers of the last answer (paged lists give their total in X-Total-Count). */
  lastHeaders?: Headers;

  constructor(opts: ClientOptions) {
    const data = opts.data ?? process.env.GOLDSNAP_DATA ?? '.goldsnap';
    this.url =
      opts.server ?? process.env.GOLDSNAP_SERVER ?? readJson(join(data, 'server.json'))?.url ?? 'http://127.0.0.1:8420';
    const token = opts.token ?? process.env.GOLDSNAP_TOKEN ?? readText(join(data, 'admin-token'));
    if (!token)
      throw new Error(
        `no API token: set GOLDSNAP_TOKEN (the server wrote an admin token to <data>/admin-token on its first start)`,
      );
    this.token = token;
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.url), {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          'user-agent': 'goldsnap-cli/0.1.0',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      throw new Error(
        `cannot reach the goldsnap server at ${this.url} (${(err as Error).cause ?? errorMessage(err)}): is \`goldsnap server\` running? (--server / GOLDSNAP_SERVER)`,
      );
    }
    this.lastHeaders = res.headers;
    const text = await res.text();
    const parsed = text ? JSON.parse(text) : undefined;
    if (!res.ok) throw new Error(`${parsed?.error ?? text} (HTTP ${res.status})`);
    return parsed as T;
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function readJson(path: string): { url?: string } | undefined {
  const text = readText(path);
  return text ? JSON.parse(text) : undefined;
}

export function common(cmd: Command): Command {
  return cmd
    .option('--server <url>', 'server URL (env GOLDSNAP_SERVER; default from <data>/server.json)')
    .option('--token <token>', 'API token (env GOLDSNAP_TOKEN; default <data>/admin-token)')
    .option('--data <dir>', "the server's data folder, to find its URL and admin token (env GOLDSNAP_DATA)")
    .option('--json', 'print JSON');
}

export function out(opts: ClientOptions, value: unknown, text: () => string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`);
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function runLine(run: Run & { summary: RunSummary }): string[] {
  const done = run.disks.reduce((n, d) => n + d.bytesDone, 0);
  const total = run.disks.reduce((n, d) => n + d.bytesTotal, 0);
  const s = run.summary;
  // A finished run shows what it did, not a transfer bar: a 4 MiB incremental is not "100%".
  const progress =
    run.step === 'succeeded' || run.step === 'failed'
      ? ''
      : total
        ? `${Math.floor((100 * done) / total)}% of ${formatBytes(total)}`
        : 'starting';
  return [
    run.id.slice(0, 8),
    run.vmName,
    s.kind ?? '-',
    s.trigger,
    run.step,
    progress,
    formatBytes(s.readBytes),
    formatBytes(s.storedBytes),
    s.durationMs === null ? '' : formatDuration(s.durationMs),
    run.createdAt.replace('T', ' ').slice(0, 19),
    run.error ?? (run.warnings?.length ? `warning: ${run.warnings.join('; ')}` : ''),
  ];
}

/** Follows a run until it ends, with a progress bar over all its disks. Exit code 1 if it failed. */
async function followRun(api: ApiClient, id: string, opts: ClientOptions): Promise<Run> {
  const bar = opts.json ? undefined : new ProgressBar('backup ');
  let run = await api.call<Run>('GET', `/api/runs/${id}`);
  let lastStep = '';
  while (run.step !== 'succeeded' && run.step !== 'failed') {
    if (run.step !== lastStep && !opts.json && !process.stderr.isTTY)
      process.stderr.write(`run ${run.id.slice(0, 8)}: ${run.step}\n`);
    lastStep = run.step;
    bar?.update(
      run.disks.reduce((n, d) => n + d.bytesDone, 0),
      run.disks.reduce((n, d) => n + d.bytesTotal, 0),
    );
    // The server answers as soon as the run leaves its step; with a bar to move, at least every second.
    run = await api.call<Run>('GET', `/api/runs/${run.id}?waitMs=${bar ? 1000 : 30_000}&step=${run.step}`);
  }
  bar?.stop(run.step === 'succeeded');
  return run;
}

function describeRun(run: Run): string {
  const lines = [`run ${run.id} of ${run.vmName}: ${run.step}${run.error ? ` (${run.error})` : ''}`];
  if (run.recoveryPointId)
    lines.push(
      `recovery point ${run.recoveryPointId.slice(0, 12)}${run.consistency ? ` (${run.consistency} consistency)` : ''}`,
    );
  for (const w of run.warnings ?? []) lines.push(`warning: ${w}`);
  for (const d of run.disks) {
    const s = d.stats;
    lines.push(
      `  ${d.diskName}: ${formatBytes(d.sizeBytes)}, ${d.incremental ? 'incremental' : 'full'}` +
        (s
          ? `, read ${formatBytes(s.readBytes)}, ${s.newChunks} new chunks (${formatBytes(s.newStoredBytes)} stored)`
          : '') +
        (d.error ? `, error: ${d.error}` : ''),
    );
  }
  return lines.join('\n');
}

/** `VMs app-1, db-1; resource groups rg-prod; tags env=prod`: a policy's selection, as a person reads it. */
function describeSelection(s: PolicySelection): string {
  const parts: string[] = [];
  // A VM's resource id ends with its name.
  if (s.vmIds?.length) parts.push(`VMs ${s.vmIds.map((id) => id.split('/').pop()).join(', ')}`);
  if (s.resourceGroups?.length) parts.push(`resource groups ${s.resourceGroups.join(', ')}`);
  if (s.subscriptions?.length) parts.push(`subscriptions ${s.subscriptions.join(', ')}`);
  if (s.tags && Object.keys(s.tags).length)
    parts.push(
      `tags ${Object.entries(s.tags)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}`,
    );
  return parts.join('; ') || 'nothing';
}

/** `last 3, 7 daily, 4 weekly`. */
function describeRetention(r: Record<string, number>): string {
  const order = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'];
  const parts = order.filter((k) => r[k] !== undefined).map((k) => (k === 'last' ? `last ${r[k]}` : `${r[k]} ${k}`));
  return parts.join(', ') || 'everything';
}

/** VM ids for --vm values that may be names: a policy selects VMs by id. */
async function vmIdsOf(api: ApiClient, refs: string[]): Promise<string[]> {
  if (refs.every((r) => r.startsWith('/subscriptions/'))) return refs;
  const vms = await api.call<Array<{ id: string; name: string; resourceGroup: string }>>(
    'GET',
    '/api/vms?refresh=true&limit=1000',
  );
  return refs.map((ref) => {
    if (ref.startsWith('/subscriptions/')) return ref;
    const named = vms.filter((v) => v.name === ref);
    if (named.length > 1)
      throw new Error(
        `--vm ${ref}: ${named.length} VMs have that name (in ${named.map((v) => v.resourceGroup).join(', ')}): give the VM's id`,
      );
    if (!named[0]) throw new Error(`--vm ${ref}: no VM of that name in the cloud account (see goldsnap vms --refresh)`);
    return named[0].id;
  });
}

export function controlCommands(): Command[] {
  const vms = common(
    new Command('vms').description('list the VMs of the cloud account, their disks and golden snapshots'),
  )
    .option('--refresh', 'ask the cloud now instead of the last inventory')
    .action(async (opts: ClientOptions & { refresh?: boolean }) => {
      const list = await new ApiClient(opts).call<
        Array<{
          id: string;
          name: string;
          region: string;
          resourceGroup: string;
          tags: Record<string, string>;
          disks: Array<{ name: string; sizeBytes: number; role: string; golden?: { snapshotId: string } }>;
        }>
      >('GET', `/api/vms?limit=1000${opts.refresh ? '&refresh=true' : ''}`);
      out(opts, list, () =>
        table([
          ['NAME', 'REGION', 'RESOURCE GROUP', 'DISKS', 'GOLDEN', 'TAGS'],
          ...list.map((vm) => [
            vm.name,
            vm.region,
            vm.resourceGroup,
            vm.disks.map((d) => `${d.name} (${d.role}, ${formatBytes(d.sizeBytes)})`).join(', '),
            `${vm.disks.filter((d) => d.golden).length}/${vm.disks.length}`,
            Object.entries(vm.tags)
              .map(([k, v]) => `${k}=${v}`)
              .join(','),
          ]),
        ]),
      );
    });

  const policies = new Command('policies').description('backup policies: schedule, VM selection, retention');
  common(policies.command('list').description('list policies and their next runs')).action(
    async (opts: ClientOptions) => {
      const list = await new ApiClient(opts).call<
        Array<{
          id: string;
          name: string;
          cron: string;
          timeZone: string;
          enabled: boolean;
          selection: PolicySelection;
          retention: Record<string, number>;
          nextRuns: string[];
        }>
      >('GET', '/api/policies?limit=1000');
      out(opts, list, () =>
        table([
          ['NAME', 'SCHEDULE', 'ENABLED', 'SELECTS', 'KEEPS', 'NEXT RUN'],
          ...list.map((p) => [
            p.name,
            p.cron,
            p.enabled ? 'yes' : 'paused',
            describeSelection(p.selection),
            describeRetention(p.retention),
            p.enabled && p.nextRuns[0] ? formatInZone(p.nextRuns[0], p.timeZone) : '-',
          ]),
        ]),
      );
    },
  );
  keepOptions(common(policies.command('create <name>').description('create a policy')))
    .requiredOption('--cron <expr>', 'when to run, e.g. "0 2 * * *"')
    .option('--time-zone <tz>', 'IANA time zone of the schedule and of retention', 'UTC')
    .option('--vm <id>', 'select this VM (id or name; repeatable)', collect)
    .option('--tag <k=v>', 'select VMs with this tag (repeatable: all must match)', collect)
    .option('--resource-group <rg>', 'select VMs in this resource group (repeatable)', collect)
    .option(
      '--subscription <id>',
      'select VMs in this Azure subscription (repeatable; with --tag/--resource-group: all must match)',
      collect,
    )
    .option('--disabled', 'create it disabled')
    .option(
      '--consistency <mode>',
      'crash (default: all disks at one instant) or application (restore point with guest scripts)',
    )
    .option('--pre-script <file>', 'application mode: shell script run in the guest before the restore point (freeze)')
    .option('--post-script <file>', 'application mode: shell script run in the guest after it (thaw)')
    .option('--script-timeout <seconds>', 'how long each script may take (default 300)', (v: string) => Number(v))
    .action(
      async (
        name: string,
        opts: ClientOptions &
          KeepOptions & {
            cron: string;
            timeZone: string;
            vm?: string[];
            tag?: string[];
            resourceGroup?: string[];
            subscription?: string[];
            disabled?: boolean;
            consistency?: string;
            preScript?: string;
            postScript?: string;
            scriptTimeout?: number;
          },
      ) => {
        const tags = opts.tag
          ? Object.fromEntries(
              opts.tag.map((t) => {
                const at = t.indexOf('=');
                if (at < 1) throw new Error(`--tag ${t}: expected key=value`);
                return [t.slice(0, at), t.slice(at + 1)];
              }),
            )
          : undefined;
        const retention = retentionFrom(opts);
        const api = new ApiClient(opts);
        const vmIds = opts.vm ? await vmIdsOf(api, opts.vm) : undefined;
        const policy = await api.call<{ id: string; name: string }>('POST', '/api/policies', {
          name,
          cron: opts.cron,
          timeZone: opts.timeZone,
          enabled: !opts.disabled,
          retention,
          ...(opts.consistency || opts.preScript || opts.postScript
            ? {
                consistency: {
                  mode: opts.consistency ?? 'application',
                  ...(opts.preScript ? { preScript: readFileSync(opts.preScript, 'utf8') } : {}),
                  ...(opts.postScript ? { postScript: readFileSync(opts.postScript, 'utf8') } : {}),
                  ...(opts.scriptTimeout !== undefined ? { scriptTimeoutSeconds: opts.scriptTimeout } : {}),
                },
              }
            : {}),
          selection: {
            ...(vmIds ? { vmIds } : {}),
            ...(tags ? { tags } : {}),
            ...(opts.resourceGroup ? { resourceGroups: opts.resourceGroup } : {}),
            ...(opts.subscription ? { subscriptions: opts.subscription } : {}),
          },
        });
        out(opts, policy, () => `policy ${policy.name} created (${policy.id})`);
      },
    );
  common(policies.command('run <policy>').description('run a policy now (id or name)'))
    .option('--wait', 'follow the runs until they end, with progress')
    .action(async (policy: string, opts: ClientOptions & { wait?: boolean }) => {
      const api = new ApiClient(opts);
      const runs = await api.call<Run[]>('POST', `/api/policies/${encodeURIComponent(policy)}/run`);
      if (!opts.wait)
        return out(opts, runs, () =>
          runs.length
            ? runs.map((r) => `run ${r.id.slice(0, 8)} started for ${r.vmName}`).join('\n')
            : 'no VM selected, or every selected VM already has a run going',
        );
      const finished: Run[] = [];
      for (const r of runs) finished.push(await followRun(api, r.id, opts));
      out(opts, finished, () => finished.map(describeRun).join('\n'));
      if (finished.some((r) => r.step === 'failed')) process.exitCode = 1;
    });
  common(policies.command('delete <policy>').description('delete a policy')).action(
    async (policy: string, opts: ClientOptions) => {
      await new ApiClient(opts).call('DELETE', `/api/policies/${encodeURIComponent(policy)}`);
      out(opts, { deleted: policy }, () => `policy ${policy} deleted`);
    },
  );

  const runs = new Command('runs').description('backup runs: list them, follow one, or back up a VM now');
  common(runs.command('list', { isDefault: true }).description('list runs, newest first (the default)'))
    .option('--vm <id>', 'only this VM (id or name)')
    .option('--active', 'only runs still going')
    .option('--status <status>', 'only runs running, finished, succeeded or failed')
    .option('--policy <policy>', 'only runs of this policy (id or name)')
    .option('--kind <kind>', 'only full or incremental runs')
    .option('--trigger <trigger>', 'only runs started by a policy or by a user')
    .option('--since <time>', 'only runs created at or after this time (ISO 8601)')
    .option('--search <text>', 'only runs whose VM name, id or error contains this')
    .option('--limit <n>', 'how many, newest first', countArg, 50)
    .option('--offset <n>', 'skip this many first', countArg, 0)
    .action(
      async (
        opts: ClientOptions & {
          vm?: string;
          active?: boolean;
          status?: string;
          policy?: string;
          kind?: string;
          trigger?: string;
          since?: string;
          search?: string;
          limit: number;
          offset: number;
        },
      ) => {
        const filters = {
          vm: opts.vm,
          status: opts.status ?? (opts.active ? 'running' : undefined),
          policy: opts.policy,
          kind: opts.kind,
          trigger: opts.trigger,
          since: opts.since,
          q: opts.search,
        };
        const q = new URLSearchParams({
          limit: String(opts.limit),
          offset: String(opts.offset),
          ...(Object.fromEntries(Object.entries(filters).filter(([, v]) => v !== undefined)) as Record<string, string>),
        });
        const api = new ApiClient(opts);
        const list = await api.call<Array<Run & { summary: RunSummary }>>('GET', `/api/runs?${q}`);
        const total = Number(api.lastHeaders?.get('x-total-count') ?? list.length);
        out(opts, list, () =>
          [
            table([
              ['RUN', 'VM', 'KIND', 'BY', 'STEP', 'PROGRESS', 'READ', 'STORED', 'TOOK', 'CREATED', 'ERROR'],
              ...list.map(runLine),
            ]),
            list.length ? `${opts.offset + 1}–${opts.offset + list.length} of ${total}` : `none of ${total}`,
          ].join('\n'),
        );
      },
    );
  common(runs.command('show <run>').description('show a run (id or prefix)'))
    .option('--follow', 'follow it live until it ends')
    .action(async (id: string, opts: ClientOptions & { follow?: boolean }) => {
      const api = new ApiClient(opts);
      const run = opts.follow ? await followRun(api, id, opts) : await api.call<Run>('GET', `/api/runs/${id}`);
      out(opts, run, () => describeRun(run));
      if (run.step === 'failed') process.exitCode = 1;
    });
  common(runs.command('start <vm>').description('back up one VM now (id or name)'))
    .option('--wait', 'follow the run until it ends, with progress')
    .action(async (vm: string, opts: ClientOptions & { wait?: boolean }) => {
      const api = new ApiClient(opts);
      let run = await api.call<Run>('POST', '/api/runs', { vmId: vm });
      if (opts.wait) run = await followRun(api, run.id, opts);
      out(opts, run, () => (opts.wait ? describeRun(run) : `run ${run.id} started for ${run.vmName}`));
      if (run.step === 'failed') process.exitCode = 1;
    });

  const points = common(new Command('points').description('list recovery points'))
    .option('--vm <id>', 'only this VM')
    .action(async (opts: ClientOptions & { vm?: string }) => {
      const list = await new ApiClient(opts).call<
        Array<{
          id: string;
          vmId: string;
          time: string;
          point: { tags: string[]; consistency?: string; disks: Array<{ name: string; sizeBytes: number }> };
        }>
      >('GET', `/api/recovery-points?limit=1000${opts.vm ? `&vm=${encodeURIComponent(opts.vm)}` : ''}`);
      out(opts, list, () =>
        table([
          ['ID', 'TIME', 'VM', 'CONSISTENCY', 'DISKS'],
          ...list.map((p) => [
            p.id.slice(0, 12),
            p.time.replace('T', ' ').slice(0, 19),
            p.point.tags.find((t) => t.startsWith('vm:'))?.slice(3) ?? p.vmId,
            p.point.consistency ?? 'per-disk',
            p.point.disks.map((d) => `${d.name} ${formatBytes(d.sizeBytes)}`).join(', '),
          ]),
        ]),
      );
    });

  const restore = common(
    new Command('restore').description('restore a recovery point to new disks (and a new VM), in any region'),
  )
    .argument('<point>', 'recovery point id or prefix')
    .requiredOption('--name <name>', 'name of the new VM, and prefix of the new disks')
    .option('--region <region>', "target region (default: the source VM's)")
    .option('--resource-group <rg>', 'target resource group (default: <name>-restore, a group no policy selects)')
    .option('--disk <name>', 'only this disk (repeatable)', collect)
    .option('--vm', 'also create a VM from the restored disks')
    .option('--nic <id>', 'network interface (resource id) for the new VM; Azure requires one')
    .option('--subnet <id>', 'make the new VM a network interface in this subnet (instead of --nic)')
    .option('--vm-size <size>', "size of the new VM (default: the source VM's)")
    .option('--subscription <id>', "Azure subscription to restore into (default: the server's first)")
    .option('--no-wait', 'return at once instead of following the restore')
    .action(
      async (
        point: string,
        opts: ClientOptions & {
          name: string;
          region?: string;
          resourceGroup?: string;
          disk?: string[];
          vm?: boolean;
          nic?: string;
          subnet?: string;
          vmSize?: string;
          subscription?: string;
          wait: boolean;
        },
      ) => {
        const api = new ApiClient(opts);
        type RestoreView = {
          id: string;
          state: string;
          progress: { doneBytes: number; totalBytes: number; disk?: string } | null;
          result: unknown;
          error: string | null;
        };
        let job = await api.call<RestoreView>('POST', '/api/restores', {
          recoveryPointId: point,
          name: opts.name,
          ...(opts.region ? { region: opts.region } : {}),
          ...(opts.resourceGroup ? { resourceGroup: opts.resourceGroup } : {}),
          ...(opts.disk ? { disks: opts.disk } : {}),
          createVm: Boolean(opts.vm),
          ...(opts.nic ? { networkInterfaceId: opts.nic } : {}),
          ...(opts.vmSize ? { vmSize: opts.vmSize } : {}),
          ...(opts.subnet ? { subnetId: opts.subnet } : {}),
          ...(opts.subscription ? { subscriptionId: opts.subscription } : {}),
        });
        if (!opts.wait) return out(opts, job, () => `restore ${job.id} queued`);
        const bar = opts.json ? undefined : new ProgressBar('restore');
        while (job.state === 'queued' || job.state === 'running') {
          if (job.progress) bar?.update(job.progress.doneBytes, job.progress.totalBytes);
          await new Promise((resolve) => setTimeout(resolve, 500));
          job = await api.call<RestoreView>('GET', `/api/restores/${job.id}`);
        }
        bar?.stop(job.state === 'done');
        if (job.state !== 'done') {
          process.exitCode = 1;
          return out(opts, job, () => `restore ${job.id} failed: ${job.error}`);
        }
        const result = job.result as {
          disks: Array<{ id: string; name: string; region: string }>;
          vm?: { id: string; name: string };
        };
        out(opts, job, () =>
          [
            ...result.disks.map((d) => `restored disk ${d.name} in ${d.region}: ${d.id}`),
            ...(result.vm ? [`created VM ${result.vm.name}: ${result.vm.id}`] : []),
          ].join('\n'),
        );
      },
    );

  const proxies = common(
    new Command('proxies').description('data proxies running now and queued work per region'),
  ).action(async (opts: ClientOptions) => {
    const r = await new ApiClient(opts).call<{
      proxies: Array<{ region: string; pid?: number; containerGroup?: string; state?: string; startedAt: string }>;
      queues: Record<string, { queued: number; running: number }>;
    }>('GET', '/api/proxies');
    out(opts, r, () =>
      table([
        ['REGION', 'PROCESS / CONTAINER GROUP', 'SINCE'],
        ...r.proxies.map((p) => [
          p.region,
          p.containerGroup ? `${p.containerGroup} (${p.state ?? '?'})` : String(p.pid),
          p.startedAt,
        ]),
      ]),
    );
  });
  proxies.addCommand(proxyCredentialsCommand());

  return [vms, policies, runs, points, restore, proxies];
}
