import { parseArgs } from 'node:util';
import { startEmulator } from './emulator.ts';
import { errorMessage } from '../util/errors.ts';

/**
 * Runs the Azure emulator: `node src/emulator/main.ts --data DIR [--port N] [--host H] [--demo]
 * [--ticker-ms N --ticker-fraction F] [--faults P]`, or `goldsnap emulator …` with the same arguments. Prints
 * one JSON line with the connection info and runs until SIGTERM/SIGINT.
 */
export async function runEmulatorProgram(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: 'string' },
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      demo: { type: 'boolean', default: false },
      'ticker-ms': { type: 'string' },
      'ticker-fraction': { type: 'string', default: '0.01' },
      faults: { type: 'string' },
      subscriptions: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help || !values.data) {
    process.stderr.write(
      'usage: node src/emulator/main.ts --data DIR [--port N] [--host H] [--demo] [--ticker-ms N] [--ticker-fraction F] [--faults default|key=value,…] [--subscriptions N]\n',
    );
    process.exit(values.help ? 0 : 2);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port: '${values.port}' is not a port number`);
  const subscriptions = Number(values.subscriptions);
  if (!Number.isInteger(subscriptions) || subscriptions < 1)
    throw new Error(`--subscriptions: '${values.subscriptions}' is not a count of subscriptions (1 or more)`);
  const emu = await startEmulator({
    dataDir: values.data,
    host: values.host,
    port,
    subscriptions,
    ...(values.faults ? { faults: values.faults } : {}),
  });
  let seeded = 0;
  if (values.demo && emu.control.listVms().length === 0) seeded = (await emu.control.seedDemo()).length;
  if (values['ticker-ms']) {
    const intervalMs = Number(values['ticker-ms']);
    const fraction = Number(values['ticker-fraction']);
    if (!(intervalMs > 0) || !(fraction > 0 && fraction <= 1))
      throw new Error('--ticker-ms must be > 0 and --ticker-fraction in (0, 1]');
    emu.control.startTicker({ intervalMs, fraction });
  }
  process.stdout.write(
    `${JSON.stringify({
      event: 'ready',
      armEndpoint: emu.armEndpoint,
      subscriptionId: emu.subscriptionId,
      subscriptionIds: emu.connectionInfo().subscriptionIds,
      connectionFile: emu.connectionFile,
      vms: emu.control.listVms().length,
      seeded,
    })}\n`,
  );
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    emu.close().then(
      () => {
        process.stderr.write(`emulator: stopped (${sig})\n`);
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`emulator: error while stopping: ${errorMessage(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (import.meta.main) {
  runEmulatorProgram(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`emulator: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
