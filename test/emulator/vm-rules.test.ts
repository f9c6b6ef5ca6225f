import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RestError } from '@azure/core-rest-pipeline';
import type { ComputeManagementClient } from '@azure/arm-compute';
import { compute, FAST, MiB, start, tempDir } from './helpers.ts';
import type { Emulator } from '../../src/emulator/emulator.ts';

let emu: Emulator;
let c: ComputeManagementClient;
let cleanup: () => Promise<void>;

before(async () => {
  const t = await tempDir();
  cleanup = t.cleanup;
  emu = await start(t.dir);
  c = compute(emu);
  await emu.control.createVm({
    name: 'vm-1',
    resourceGroup: 'rg',
    region: 'westeurope',
    seed: 1,
    disks: [{ name: 'vm-1-os', sizeBytes: 4 * MiB, role: 'os' }],
  });
});

after(async () => {
  await emu.close();
  await cleanup();
});

async function refusal(p: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RestError) return { status: e.statusCode ?? 0, message: e.message };
    throw e;
  }
  assert.fail('expected Azure to refuse');
}

const upload = { createOption: 'Upload' as const, uploadSizeBytes: 4 * MiB + 512 };

test('refuses what Azure refuses: Ultra upload, a Gen2 disk on a Gen1-only size, Trusted Launch on Gen1', async () => {
  const ultra = await refusal(
    c.disks.beginCreateOrUpdateAndWait(
      'rg',
      'u1',
      { location: 'westeurope', sku: { name: 'UltraSSD_LRS' }, creationData: upload },
      FAST,
    ),
  );
  assert.equal(ultra.status, 400);
  assert.match(ultra.message, /Ultra/);
  const tlGen1 = await refusal(
    c.disks.beginCreateOrUpdateAndWait(
      'rg',
      't1',
      {
        location: 'westeurope',
        hyperVGeneration: 'V1',
        securityProfile: { securityType: 'TrustedLaunch' },
        creationData: upload,
      },
      FAST,
    ),
  );
  assert.equal(tlGen1.status, 400);

  // A Gen2 OS disk made by upload, finished, then a VM of a Gen1-only size over it.
  const disk = await c.disks.beginCreateOrUpdateAndWait(
    'rg',
    'g2',
    { location: 'westeurope', osType: 'Linux', hyperVGeneration: 'V2', creationData: upload },
    FAST,
  );
  await c.disks.beginGrantAccessAndWait('rg', 'g2', { access: 'Write', durationInSeconds: 600 }, FAST);
  await c.disks.beginRevokeAccessAndWait('rg', 'g2', FAST);
  const vm = (size: string, securityType?: string) =>
    c.virtualMachines.beginCreateOrUpdateAndWait(
      'rg',
      `vm-${size}`,
      {
        location: 'westeurope',
        hardwareProfile: { vmSize: size },
        ...(securityType ? { securityProfile: { securityType } } : {}),
        storageProfile: { osDisk: { osType: 'Linux', createOption: 'Attach', managedDisk: { id: disk.id! } } },
      },
      FAST,
    );
  const gen1 = await refusal(vm('Standard_A2_v2'));
  assert.match(gen1.message, /cannot boot Hypervisor Generation '2'/);
  const mismatch = await refusal(vm('Standard_D2s_v5', 'TrustedLaunch'));
  assert.match(mismatch.message, /securityType/);
  const ok = await vm('Standard_D2s_v5');
  assert.equal(ok.hardwareProfile?.vmSize, 'Standard_D2s_v5');
});

test('Run Command runs the script on the simulated VM: output, exit status, one at a time', async () => {
  const ok = await c.virtualMachines.beginRunCommandAndWait(
    'rg',
    'vm-1',
    { commandId: 'RunShellScript', script: ['echo frozen', '# a comment'] },
    FAST,
  );
  assert.match(ok.value![0]!.message!, /^Enable succeeded: \n\[stdout\]\nfrozen\n/);
  const failed = await c.virtualMachines.beginRunCommandAndWait(
    'rg',
    'vm-1',
    { commandId: 'RunShellScript', script: ['echo no lock', 'exit 4'] },
    FAST,
  );
  assert.match(failed.value![0]!.message!, /^Enable failed: .*exit status=4\n\[stdout\]\nno lock/);
  const unknown = await c.virtualMachines.beginRunCommandAndWait(
    'rg',
    'vm-1',
    { commandId: 'RunShellScript', script: ['fsfreeze -f /data'] },
    FAST,
  );
  assert.match(unknown.value![0]!.message!, /exit status=127[\s\S]*command not found/);
  const windows = await refusal(
    c.virtualMachines.beginRunCommandAndWait(
      'rg',
      'vm-1',
      { commandId: 'RunPowerShellScript', script: ['echo hi'] },
      FAST,
    ),
  );
  assert.equal(windows.status, 409);
  // A command that hangs holds the VM: the next one is refused until it ends.
  await c.virtualMachines.beginRunCommand('rg', 'vm-1', { commandId: 'RunShellScript', script: ['sleep 3600'] }, FAST);
  const busy = await refusal(
    c.virtualMachines.beginRunCommandAndWait('rg', 'vm-1', { commandId: 'RunShellScript', script: ['echo hi'] }, FAST),
  );
  assert.equal(busy.status, 409);
});
