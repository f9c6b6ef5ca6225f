import { readFile } from 'node:fs/promises';
import type { Run } from '../../src/control/orchestrator/run-model.ts';
import { MiB, type ServerUnderTest } from './goldsnap-server.ts';

/**
 * Makes VM `name` in the server's emulator whose OS disk (`<name>-os`) holds the disk image at
 * `image`, written by the VM 1 MiB at a time (zero MiBs skipped), and backs it up once through the
 * API. Returns the finished run; the caller asserts it succeeded.
 */
export async function backUpVmHoldingImage(server: ServerUnderTest, name: string, image: string): Promise<Run> {
  const bytes = await readFile(image);
  const diskName = `${name}-os`;
  const vm = await server.createVm({
    name,
    resourceGroup: 'rg-files',
    region: 'westeurope',
    disks: [{ name: diskName, sizeBytes: bytes.length, role: 'os', fill: 'zeros' }],
  });
  for (let at = 0; at < bytes.length; at += MiB) {
    const piece = bytes.subarray(at, at + MiB);
    if (piece.some((b) => b !== 0))
      await server.emulator('POST', `vms/${name}/writes`, {
        writes: [{ diskName, offset: at, dataBase64: piece.toString('base64') }],
      });
  }
  const started = (await server.api('POST', '/api/runs', { vmId: vm.id })).body as Run;
  return server.runEnded<Run>(started.id);
}
