import { Command, InvalidArgumentError } from 'commander';
import { readPassphrase } from './passphrase.ts';
import { countArg, sizeArg } from './parse.ts';
import { DEFAULT_PROXY_JOBS } from '../control/proxy/protocol.ts';

/** A log line on stderr: text, or (GOLDSNAP_LOG_FORMAT=json, inherited by the proxies a server starts) one JSON object. */
const log = (line: string) =>
  process.stderr.write(
    process.env.GOLDSNAP_LOG_FORMAT === 'json'
      ? `${JSON.stringify({ level: 30, time: new Date().toISOString(), pid: process.pid, msg: line })}\n`
      : `${new Date().toISOString()} ${line}\n`,
  );
const textLog = log;

function logFormatArg(value: string): 'text' | 'json' {
  if (value !== 'text' && value !== 'json') throw new InvalidArgumentError('text or json');
  return value;
}

function jobsArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError('a whole number from 1 to 64');
  return n;
}

function portArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port number from 0 to 65535');
  return n;
}

/** `goldsnap server`: the whole control plane in one process (see src/control/server/server.ts). */
export function serverCommand(): Command {
  return new Command('server')
    .description(
      'run the control plane: catalog, scheduler, orchestrator, data proxies, REST API (and the emulator when no Azure subscription is set)',
    )
    .option(
      '--data <dir>',
      'data folder: embedded catalog, repository, emulator state (env GOLDSNAP_DATA)',
      process.env.GOLDSNAP_DATA ?? '.goldsnap',
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free one)', portArg, 8420)
    .option('--demo', 'on first start, create demo VMs in the emulator and a demo policy, and back them up')
    .option('--proxy-idle <seconds>', 'a data proxy stops after this long without work', countArg, 20)
    .option(
      '--proxy-jobs <n>',
      'how many transfers or restores each data proxy runs at once (several disks of a VM in parallel)',
      jobsArg,
      DEFAULT_PROXY_JOBS,
    )
    .option(
      '--bandwidth <size>',
      'per second, read limit of each data proxy transfer and write limit of each restore (e.g. 50MiB)',
    )
    .option('--scheduler-interval <ms>', 'how often policies are checked', countArg, 15_000)
    .option(
      '--proxy-launcher <kind>',
      'where data proxies run: local (child processes) or aci (Azure Container Instances in each region; env GOLDSNAP_PROXY_LAUNCHER)',
      process.env.GOLDSNAP_PROXY_LAUNCHER ?? 'local',
    )
    .option(
      '--log-format <format>',
      'text, or json: one JSON object a line on stderr, API requests included (env GOLDSNAP_LOG_FORMAT)',
      logFormatArg,
      process.env.GOLDSNAP_LOG_FORMAT || 'text',
    )
    .option(
      '--faults <profile>',
      "the hosted emulator's seeded fault profile: 'default' or key=value,… (docs/emulator.md)",
    )
    .option(
      '--emulator-subscriptions <n>',
      'how many subscriptions the hosted emulator has (a backup or restore works across them)',
      countArg,
    )
    .action(
      async (opts: {
        data: string;
        host: string;
        port: number;
        demo?: boolean;
        proxyIdle: number;
        proxyJobs: number;
        bandwidth?: string;
        schedulerInterval: number;
        proxyLauncher: string;
        logFormat: 'text' | 'json';
        faults?: string;
        emulatorSubscriptions?: number;
      }) => {
        if (opts.bandwidth) sizeArg(opts.bandwidth);
        if (opts.faults) (await import('../emulator/faults.ts')).parseFaultProfile(opts.faults);
        process.env.GOLDSNAP_LOG_FORMAT = opts.logFormat;
        const logger =
          opts.logFormat === 'json' ? (await import('../control/server/json-log.ts')).jsonLogger() : undefined;
        const log = logger ? (line: string) => logger.info(line) : textLog;
        const { startServer } = await import('../control/server/server.ts');
        // AZURE_SUBSCRIPTION_IDS: more subscriptions to back up and restore to (src/cloud/open-cloud.ts).
        const moreSubscriptions = (await import('../cloud/open-cloud.ts')).subscriptionIdsFromEnv();
        const passphrase =
          process.env.GOLDSNAP_PASSWORD !== undefined || process.env.GOLDSNAP_PASSWORD_FILE
            ? await readPassphrase(undefined)
            : undefined;
        const server = await startServer({
          dataDir: opts.data,
          host: opts.host,
          port: opts.port,
          demo: Boolean(opts.demo),
          databaseUrl: process.env.DATABASE_URL || undefined,
          repository: process.env.GOLDSNAP_REPOSITORY || undefined,
          passphrase,
          azureSubscriptionId:
            process.env.GOLDSNAP_CLOUD === 'emulator'
              ? undefined
              : process.env.AZURE_SUBSCRIPTION_ID || moreSubscriptions[0],
          azureSubscriptionIds: moreSubscriptions,
          emulatorConnectionFile: process.env.GOLDSNAP_EMULATOR || undefined,
          proxyIdleSeconds: opts.proxyIdle,
          proxyJobs: opts.proxyJobs,
          proxyBandwidth: opts.bandwidth,
          schedulerIntervalMs: opts.schedulerInterval,
          log,
          ...(logger ? { logger } : {}),
          proxyLauncher: opts.proxyLauncher,
          serverRegion: process.env.GOLDSNAP_SERVER_REGION || undefined,
          ...(opts.faults ? { emulatorFaults: opts.faults } : {}),
          ...(opts.emulatorSubscriptions ? { emulatorSubscriptions: opts.emulatorSubscriptions } : {}),
        });
        log(`goldsnap server listening on ${server.url}`);
        log(
          `try: bin/goldsnap vms | bin/goldsnap runs | bin/goldsnap points | bin/goldsnap restore <point> --name copy (API token: ${opts.data}/admin-token)`,
        );
        await new Promise<void>((resolve) => {
          const stop = () => resolve();
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        log('stopping');
        await server.close();
        process.exit(0);
      },
    );
}

/** `goldsnap proxy`: a data proxy for one region, normally started by the server. */
export function proxyCommand(): Command {
  return new Command('proxy')
    .description('run a data proxy for one region (the server starts these by itself)')
    .requiredOption('--region <region>', 'the region whose transfer queue it serves')
    .option('--idle <seconds>', 'stop after this long without work', countArg, 20)
    .option('--jobs <n>', 'how many transfers or restores to run at once', jobsArg, DEFAULT_PROXY_JOBS)
    .option('--bandwidth <size>', 'per second, read limit per transfer and write limit per restore', sizeArg)
    .option(
      '--location <region>',
      'the region this proxy runs in, recorded with each transfer (env GOLDSNAP_PROXY_LOCATION; default: --region)',
    )
    .action(async (opts: { region: string; idle: number; jobs: number; bandwidth?: number; location?: string }) => {
      const serverUrl = process.env.GOLDSNAP_SERVER_URL;
      const token = process.env.GOLDSNAP_PROXY_TOKEN;
      const location = process.env.GOLDSNAP_REPOSITORY;
      if (!serverUrl || !token || !location)
        throw new Error(
          'a proxy needs GOLDSNAP_SERVER_URL, GOLDSNAP_PROXY_TOKEN (a credential for its region: goldsnap proxies credentials create --region <region>) and GOLDSNAP_REPOSITORY (the server sets them for the proxies it starts)',
        );
      const runsIn = opts.location ?? process.env.GOLDSNAP_PROXY_LOCATION ?? opts.region;
      // Started by a server: end with it, so its jobs go to the next server's proxies.
      if (process.send) process.on('disconnect', () => process.exit(70));
      const [{ runProxy }, { openCloud, cloudConfigFromEnv }, { openBackend }, { Repository }] = await Promise.all([
        import('../control/proxy/proxy.ts'),
        import('../cloud/open-cloud.ts'),
        import('../repository/backend/open.ts'),
        import('../repository/repository.ts'),
      ]);
      const repo = await Repository.open(openBackend(location), await readPassphrase(undefined));
      const cloud = await openCloud(cloudConfigFromEnv(''));
      await runProxy({
        region: opts.region,
        location: runsIn,
        serverUrl,
        token,
        repo,
        cloud,
        idleMs: opts.idle * 1000,
        jobs: opts.jobs,
        bandwidth: opts.bandwidth ?? 0,
        log: (line) => log(line),
      });
      process.exit(0);
    });
}

/** `goldsnap emulator`: the Azure emulator's own program (src/emulator/main.ts), with its arguments. */
export function emulatorCommand(): Command {
  return new Command('emulator')
    .description(
      'run the Azure emulator on its own: --data DIR [--port N] [--host H] [--demo] [--ticker-ms N --ticker-fraction F] [--faults P] (docs/emulator.md)',
    )
    .helpOption(false)
    .allowUnknownOption()
    .argument('[args...]')
    .action(async (args: string[]) => {
      const { runEmulatorProgram } = await import('../emulator/main.ts');
      await runEmulatorProgram(args);
    });
}
