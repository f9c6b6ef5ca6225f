import assert from 'node:assert/strict';
import { MiB, type ServerUnderTest } from './goldsnap-server.ts';

/** What the end-to-end suites share: the run as the API shows it, a small VM, and the two checks every run ends with. */

export type Run = {
  id: string;
  step: string;
  error?: string;
  recoveryPointId?: string;
  disks: Array<{
    diskId: string;
    diskName: string;
    incremental?: boolean;
    bytesDone: number;
    snapshotId?: string;
    stats?: { readBytes: number; newChunks: number };
  }>;
};

export function vmSpec(name: string, region = 'westeurope') {
  return {
    name,
    resourceGroup: 'rg-e2e',
    region,
    tags: { env: 'e2e' },
    disks: [
      { name: `${name}-os`, sizeBytes: 24 * MiB, role: 'os', fill: 'os-like' },
      { name: `${name}-data`, sizeBytes: 8 * MiB, role: 'data', lun: 0, fill: 'random' },
    ],
  };
}

/**
 * The disks' golden snapshots in the cloud: exactly one per disk, and the one the catalog names.
 * Where the VM has restore points, its one golden restore point holds every disk's golden.
 */
export async function assertOneGoldenPerDisk(server: ServerUnderTest, vmId: string): Promise<void> {
  const cloud = await server.cloud();
  const vm = await cloud.getVm(vmId);
  const ours = await cloud.listGoldsnapSnapshots();
  const golden = (await server.api('GET', '/api/golden-snapshots')).body as Array<{
    diskId: string;
    snapshotId: string;
  }>;
  const mine = (await cloud.listGoldsnapVmPoints!()).filter((p) =>
    p.id.toLowerCase().includes(`/restorepointcollections/goldsnap-${vm.name.toLowerCase()}/`),
  );
  if (mine.length > 0) {
    assert.equal(
      mine.length,
      1,
      `VM ${vm.name} has exactly one Goldsnap restore point (has ${mine.map((p) => p.id.split('/').pop()).join(', ')})`,
    );
    for (const disk of vm.disks) {
      assert.ok(
        mine[0].diskPointIds.includes(golden.find((g) => g.diskId === disk.id)?.snapshotId ?? ''),
        `the catalog's golden of ${disk.name} is in that restore point`,
      );
      assert.equal(
        ours.filter((s) => s.diskId.toLowerCase() === disk.id.toLowerCase()).length,
        0,
        `no Goldsnap snapshot of ${disk.name} is left`,
      );
    }
    return;
  }
  for (const disk of vm.disks) {
    const snaps = ours.filter((s) => s.diskId.toLowerCase() === disk.id.toLowerCase());
    assert.equal(
      snaps.length,
      1,
      `disk ${disk.name} has exactly one Goldsnap snapshot (has ${snaps.map((s) => s.name).join(', ')})`,
    );
    assert.equal(
      golden.find((g) => g.diskId === disk.id)?.snapshotId,
      snaps[0].id,
      `the catalog's golden snapshot of ${disk.name} is that one`,
    );
  }
}

/** Restores a recovery point to new disks and compares them with the expected content, bit for bit. */
export async function assertRestoresTo(
  server: ServerUnderTest,
  pointId: string,
  name: string,
  expected: Map<string, Buffer>,
  extra: string[] = [],
): Promise<void> {
  const job = await server.cliJson<{
    state: string;
    result: { disks: Array<{ id: string; name: string; region: string }>; vm?: { name: string } };
  }>(['restore', pointId, '--name', name, ...extra]);
  assert.equal(job.state, 'done');
  for (const [diskName, content] of expected) {
    const disk = job.result.disks.find((d) => d.name === `${name}-${diskName}`); // new disks are named <name>-<source disk>
    assert.ok(disk, `restored ${diskName}`);
    const restored = await server.diskContent(disk.id);
    assert.equal(restored.length, content.length, `${diskName} has the source size`);
    assert.ok(restored.equals(content), `${diskName} restores bit for bit`);
  }
}
