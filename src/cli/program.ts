import { Command } from 'commander';
import { demoCommand } from './demo-command.ts';
import { repoCommands } from './repo-commands.ts';

const program = new Command('goldsnap')
  .description('Agentless, incremental-forever backup for cloud VMs')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)');
program.addCommand(repoCommands());
program.addCommand(demoCommand());

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`goldsnap: error: ${(err as Error).message}\n`);
  if (process.env.GOLDSNAP_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
}
