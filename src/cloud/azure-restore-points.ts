import type { ComputeManagementClient, RestorePoint } from '@azure/arm-compute';
import {
  GOLDSNAP_TAG,
  VmPointUnsupportedError,
  type CloudSnapshot,
  type GoldsnapVmPoint,
  type VmPoint,
  type VmPointRequest,
} from './cloud.ts';
import { errorMessage } from '../util/errors.ts';

/**
 * VM restore points on Azure (learn.microsoft.com/azure/virtual-machines/concepts-restore-points):
 * one restore point collection per VM (`goldsnap-<vm>`, tagged as Goldsnap's), one restore point per
 * run (`goldsnap-<run id>`), one disk restore point per disk, read through grant access like a snapshot.
 */

export interface DiskPointId {
  resourceGroup: string;
  collection: string;
  point: string;
  name: string;
}

export interface VmPointId {
  resourceGroup: string;
  collection: string;
  point: string;
}

const POINT_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/restorePointCollections\/([^/]+)\/restorePoints\/([^/]+)$/i;
const DISK_POINT_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/restorePointCollections\/([^/]+)\/restorePoints\/([^/]+)\/diskRestorePoints\/([^/]+)$/i;

/** The parts of a disk restore point id, or undefined when `id` is not one (a snapshot's, say). */
export function parseDiskPointId(id: string): DiskPointId | undefined {
  const m = DISK_POINT_ID.exec(id);
  return m ? { resourceGroup: m[1]!, collection: m[2]!, point: m[3]!, name: m[4]! } : undefined;
}

export function parseVmPointId(id: string): VmPointId | undefined {
  const m = POINT_ID.exec(id) ?? DISK_POINT_ID.exec(id);
  return m ? { resourceGroup: m[1]!, collection: m[2]!, point: m[3]! } : undefined;
}

/** The id of the restore point a disk restore point belongs to. */
export function vmPointIdOf(diskPointId: string): string | undefined {
  return parseDiskPointId(diskPointId) ? diskPointId.replace(/\/diskRestorePoints\/[^/]+$/i, '') : undefined;
}

/** Restore point names Goldsnap gives: goldsnap-<run id>. */
const POINT_NAME = /^goldsnap-([0-9a-f-]{36})$/i;

export function collectionNameFor(vmName: string): string {
  return `goldsnap-${vmName}`.slice(0, 80);
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

/** Azure answers 400/409 OperationNotAllowed (or BadRequest) for VMs that cannot have restore points. */
function isUnsupported(err: unknown): boolean {
  const status = statusOf(err);
  return (
    (status === 400 || status === 409) &&
    /OperationNotAllowed|NotSupported|BadRequest/i.test(String((err as { code?: string }).code ?? ''))
  );
}

export class AzureVmPoints {
  private readonly compute: ComputeManagementClient;
  private readonly poll: { updateIntervalInMs?: number };

  constructor(compute: ComputeManagementClient, poll: { updateIntervalInMs?: number }) {
    this.compute = compute;
    this.poll = poll;
  }

  async create(req: VmPointRequest): Promise<VmPoint> {
    const rg = req.vm.resourceGroup;
    const collection = collectionNameFor(req.vm.name);
    await this.compute.restorePointCollections.createOrUpdate(rg, collection, {
      location: req.vm.region,
      tags: { [GOLDSNAP_TAG]: 'true', goldsnapVm: req.vm.id },
      source: { id: req.vm.id },
    });
    // Idempotent by name: a run resumed after a crash finds the restore point it already asked for.
    let point = await this.compute.restorePoints.get(rg, collection, req.name).catch((err) => {
      if (statusOf(err) === 404) return undefined;
      throw err;
    });
    if (point?.provisioningState !== 'Succeeded') {
      try {
        point = await this.compute.restorePoints.beginCreateAndWait(
          rg,
          collection,
          req.name,
          {
            consistencyMode: req.consistency === 'application' ? 'ApplicationConsistent' : 'CrashConsistent',
          },
          this.poll,
        );
      } catch (err) {
        if (isUnsupported(err))
          throw new VmPointUnsupportedError(`VM ${req.vm.name} cannot have restore points: ${errorMessage(err)}`);
        throw err;
      }
    }
    return this.toVmPoint(point, req);
  }

  private toVmPoint(point: RestorePoint, req: VmPointRequest): VmPoint {
    const storage = point.sourceMetadata?.storageProfile;
    const refs = [storage?.osDisk, ...(storage?.dataDisks ?? [])];
    const disks: CloudSnapshot[] = [];
    for (const ref of refs) {
      const diskId = ref?.managedDisk?.id;
      const pointId = ref?.diskRestorePoint?.id;
      if (!diskId || !pointId) continue;
      const disk = req.vm.disks.find((d) => d.id.toLowerCase() === diskId.toLowerCase());
      if (!disk) continue;
      disks.push({
        id: pointId,
        name: pointId.split('/').pop()!,
        diskId: disk.id,
        region: disk.region,
        sizeBytes: disk.sizeBytes,
        tags: {},
        createdAt: (point.timeCreated ?? new Date()).toISOString(),
      });
    }
    const missing = req.vm.disks.filter((d) => !disks.some((s) => s.diskId === d.id));
    if (missing.length)
      throw new Error(
        `restore point ${point.name} has no disk restore point for ${missing.map((d) => d.name).join(', ')}`,
      );
    // FileSystemConsistent (Linux without application scripts) is not application-consistent.
    return {
      id: point.id!,
      consistency: point.consistencyMode === 'ApplicationConsistent' ? 'application' : 'crash',
      disks,
    };
  }

  async list(): Promise<GoldsnapVmPoint[]> {
    const found: GoldsnapVmPoint[] = [];
    for await (const c of this.compute.restorePointCollections.listAll()) {
      if (c.tags?.[GOLDSNAP_TAG] !== 'true' || !c.id) continue;
      const rg = c.id.split('/')[4]!;
      const full = await this.compute.restorePointCollections.get(rg, c.name!, { expand: 'restorePoints' });
      for (const p of full.restorePoints ?? []) {
        const storage = p.sourceMetadata?.storageProfile;
        const diskPointIds = [storage?.osDisk, ...(storage?.dataDisks ?? [])]
          .map((d) => d?.diskRestorePoint?.id)
          .filter((id): id is string => Boolean(id));
        const runId = POINT_NAME.exec(p.name ?? '')?.[1];
        found.push({ id: p.id!, ...(runId ? { runId } : {}), diskPointIds });
      }
    }
    return found;
  }

  /** Deletes a restore point (given its id or one of its disk restore points'); absent is fine. */
  async delete(id: string, revoke: (diskPointIds: string[]) => Promise<void>): Promise<void> {
    const p = parseVmPointId(id);
    if (!p) throw new Error(`${id} is not the id of a VM restore point`);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.compute.restorePoints.beginDeleteAndWait(p.resourceGroup, p.collection, p.point, this.poll);
        return;
      } catch (err) {
        if (statusOf(err) === 404) return;
        if (statusOf(err) !== 409 || attempt > 0) throw err;
        // A read grant left open by a proxy that was killed blocks the delete: revoke, delete again.
        const ids: string[] = [];
        for await (const d of this.compute.diskRestorePoint.listByRestorePoint(p.resourceGroup, p.collection, p.point))
          if (d.id) ids.push(d.id);
        await revoke(ids);
      }
    }
  }

  /** A disk restore point as a snapshot; `sizeBytes` finds its size (Azure's model has none). */
  async get(
    id: string,
    sizeBytes: (sourceDiskId: string | undefined) => Promise<number>,
  ): Promise<CloudSnapshot | undefined> {
    const p = parseDiskPointId(id)!;
    try {
      const d = await this.compute.diskRestorePoint.get(p.resourceGroup, p.collection, p.point, p.name);
      return {
        id: d.id!,
        name: d.name!,
        diskId: d.sourceResourceId ?? '',
        region: d.sourceResourceLocation ?? '',
        sizeBytes: await sizeBytes(d.sourceResourceId),
        tags: {},
        createdAt: (d.timeCreated ?? new Date()).toISOString(),
      };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /** Waits until a disk restore point's background copy is complete (Premium SSD v2, Ultra). */
  async waitUntilReadable(id: string, pollMs: number): Promise<void> {
    const p = parseDiskPointId(id)!;
    for (;;) {
      const d = await this.compute.diskRestorePoint.get(p.resourceGroup, p.collection, p.point, p.name);
      if ((d.completionPercent ?? 100) >= 100) return;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }

  grant(id: string, durationInSeconds: number): Promise<string> {
    const p = parseDiskPointId(id)!;
    return this.compute.diskRestorePoint
      .beginGrantAccessAndWait(
        p.resourceGroup,
        p.collection,
        p.point,
        p.name,
        { access: 'Read', durationInSeconds },
        this.poll,
      )
      .then((a) => {
        if (!a.accessSAS) throw new Error(`Azure granted access to ${p.name} without a SAS URL`);
        return a.accessSAS;
      });
  }

  async revoke(id: string): Promise<void> {
    const p = parseDiskPointId(id)!;
    await this.compute.diskRestorePoint.beginRevokeAccessAndWait(
      p.resourceGroup,
      p.collection,
      p.point,
      p.name,
      this.poll,
    );
  }
}
