import type { ComputeManagementClient } from '@azure/arm-compute';
import { parseResourceId } from './azure-ids.ts';
import type { ScriptResult } from './cloud.ts';
import { errorMessage } from '../util/errors.ts';

/**
 * Runs a script in a VM's guest through Run Command (virtualMachines.runCommand, the action form:
 * learn.microsoft.com/azure/virtual-machines/linux/run-command). Its result is one status message:
 * "Enable succeeded: …" or "Enable failed: … exit status=<n>", then [stdout] and [stderr].
 * Goldsnap stops waiting after `timeoutSeconds` (Azure itself lets a script run 90 minutes).
 */
export async function runGuestScript(
  compute: ComputeManagementClient,
  vmId: string,
  script: string,
  timeoutSeconds: number,
  poll: { updateIntervalInMs?: number },
): Promise<ScriptResult> {
  const { resourceGroup, name } = parseResourceId(vmId);
  const vm = await compute.virtualMachines.get(resourceGroup, name);
  const commandId = vm.storageProfile?.osDisk?.osType === 'Windows' ? 'RunPowerShellScript' : 'RunShellScript';
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutSeconds * 1000);
  try {
    const result = await compute.virtualMachines.beginRunCommandAndWait(
      resourceGroup,
      name,
      { commandId, script: script.split('\n') },
      { ...poll, abortSignal: abort.signal },
    );
    const message = (result.value ?? []).map((s) => s.message ?? '').join('\n');
    const failed = /^Enable failed/m.test(message) || (result.value ?? []).some((s) => /failed/i.test(s.code ?? ''));
    const exit = /exit status=(\d+)/.exec(message);
    return { ok: !failed, exitCode: failed ? Number(exit?.[1] ?? 1) : 0, output: message.slice(0, 2000) };
  } catch (err) {
    if (abort.signal.aborted) return { ok: false, timedOut: true, output: `no answer within ${timeoutSeconds} s` };
    return { ok: false, output: errorMessage(err) };
  } finally {
    clearTimeout(timer);
  }
}
