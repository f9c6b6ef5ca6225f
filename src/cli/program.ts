import { Command } from 'commander';
import { auditCommand, tokensCommand } from './admin-commands.ts';
import { alertsCommand } from './alert-commands.ts';
import { controlCommands } from './control-commands.ts';
import { demoCommand } from './demo-command.ts';
import { repoFilesCommand, repoMountCommand } from './files-commands.ts';
import { filesCommand } from './files-server-commands.ts';
import { repoCommands } from './repo-commands.ts';
import { emulatorCommand, proxyCommand, serverCommand } from './server-commands.ts';
import { errorMessage } from '../util/errors.ts';

const program = new Command('goldsnap')
  .description('Agentless, incremental-forever backup for cloud VMs')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)');
program.addCommand(serverCommand());
for (const command of controlCommands()) program.addCommand(command);
program.addCommand(tokensCommand());
program.addCommand(auditCommand());
program.addCommand(alertsCommand());
program.addCommand(filesCommand());
program.addCommand(repoCommands().addCommand(repoFilesCommand()).addCommand(repoMountCommand()));
program.addCommand(proxyCommand());
program.addCommand(emulatorCommand());
program.addCommand(demoCommand());

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`goldsnap: error: ${errorMessage(err)}\n`);
  if (process.env.GOLDSNAP_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
}
