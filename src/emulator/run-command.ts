import { ArmError, obj, type ArmResult, type EmulatorCore } from './core.ts';
import { keyOf } from './state.ts';

/**
 * Azure's Run Command (POST .../virtualMachines/{vm}/runCommand, learn.microsoft.com/azure/
 * virtual-machines/linux/run-command) on the simulated VM. There is no guest, so the script is read
 * in a tiny language that stands for what a real script would do:
 *
 *   echo <text>      prints <text>
 *   sleep <seconds>  makes the command take that much longer (a pre-script that hangs)
 *   exit <n>         ends the script with exit status n (a pre-script that fails)
 *   # …              a comment; blank lines are skipped
 *
 * Anything else fails with status 127, as a shell does for an unknown command. The result has
 * Azure's shape: one status whose message starts with "Enable succeeded" or, for a non-zero exit,
 * "Enable failed: … exit status=<n>", then [stdout] and [stderr].
 */

/** At most one Run Command at a time per VM, as on Azure: VM key → when the running one ends. */
const running = new Map<string, number>();

const SHELLS: Record<string, string> = { RunShellScript: 'Linux', RunPowerShellScript: 'Windows' };

export function interpretScript(lines: string[]): {
  exitCode: number;
  stdout: string;
  stderr: string;
  seconds: number;
} {
  let stdout = '';
  let seconds = 0;
  for (const raw of lines.flatMap((l) => l.split('\n'))) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [cmd, ...args] = line.split(/\s+/);
    if (cmd === 'echo') stdout += `${args.join(' ')}\n`;
    else if (cmd === 'sleep' && Number.isFinite(Number(args[0])) && Number(args[0]) >= 0) seconds += Number(args[0]);
    else if (cmd === 'exit' && Number.isInteger(Number(args[0] ?? '0'))) {
      const exitCode = Number(args[0] ?? '0');
      return { exitCode, stdout, stderr: '', seconds };
    } else return { exitCode: 127, stdout, stderr: `bash: line 1: ${cmd}: command not found\n`, seconds };
  }
  return { exitCode: 0, stdout, stderr: '', seconds };
}

export async function runCommand(core: EmulatorCore, rg: string, vmName: string, body: unknown): Promise<ArmResult> {
  const vm = core.st.virtualMachines[keyOf(core.resourceId(rg, 'virtualMachines', vmName))];
  if (!vm)
    throw new ArmError(
      404,
      'ResourceNotFound',
      `The Resource 'Microsoft.Compute/virtualMachines/${vmName}' under resource group '${rg}' was not found.`,
    );
  const b = obj(body, 'parameters');
  const commandId = b['commandId'];
  const shellOs = typeof commandId === 'string' ? SHELLS[commandId] : undefined;
  if (!shellOs)
    throw new ArmError(
      400,
      'InvalidParameter',
      `The value '${String(commandId)}' of parameter 'commandId' is not supported by the emulator (RunShellScript, RunPowerShellScript).`,
    );
  if (shellOs !== vm.osType)
    throw new ArmError(409, 'OperationNotAllowed', `${String(commandId)} cannot run on a ${vm.osType} VM.`);
  const script = b['script'];
  if (!Array.isArray(script) || !script.every((l) => typeof l === 'string'))
    throw new ArmError(400, 'InvalidParameter', "The value of parameter 'script' must be a list of lines.");
  const key = keyOf(vm.id);
  if ((running.get(key) ?? 0) > Date.now()) {
    throw new ArmError(
      409,
      'Conflict',
      `Run command extension execution is in progress on VM ${vm.name}. Please wait for completion before invoking a run command.`,
    );
  }
  const r = interpretScript(script as string[]);
  const delay = core.timings.vm + r.seconds * 1000;
  running.set(key, Date.now() + delay);
  const head =
    r.exitCode === 0
      ? 'Enable succeeded: '
      : `Enable failed: failed to execute command: command terminated with exit status=${r.exitCode}`;
  const output = {
    value: [
      {
        code: 'ProvisioningState/succeeded',
        level: 'Info',
        displayStatus: 'Provisioning succeeded',
        message: `${head}\n[stdout]\n${r.stdout}\n[stderr]\n${r.stderr}`,
      },
    ],
  };
  const op = core.newOperation(vm.location, 'vm', delay, output);
  await core.save();
  return { status: 202, operation: op, location: true };
}
