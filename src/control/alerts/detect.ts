import { Cron } from 'croner';
import type { Queryable } from '../catalog/database.ts';
import { isProtected, type Policy } from '../catalog/policies.ts';
import type { InventoryVm } from '../catalog/run-store.ts';
import type { Run } from '../orchestrator/run-model.ts';
import type { AlertEvent } from './alert-store.ts';

export type NewAlert = Omit<AlertEvent, 'createdAt'>;

/** Runs that failed within `lookbackMs`: one event per run. */
export async function failedRuns(db: Queryable, now: Date, lookbackMs: number): Promise<NewAlert[]> {
  const rows = await db.query<{ doc: Run }>(
    "SELECT doc FROM runs WHERE step = 'failed' AND finished_at >= $1 ORDER BY finished_at",
    [new Date(now.getTime() - lookbackMs).toISOString()],
  );
  return rows.map(({ doc: run }) => ({
    key: `run-failed:${run.id}`,
    kind: 'run-failed',
    subject: `Backup of ${run.vmName} failed`,
    details: {
      runId: run.id,
      vm: run.vmName,
      vmId: run.vmId,
      policyId: run.policyId ?? null,
      error: run.error ?? 'unknown error',
      finishedAt: run.finishedAt ?? null,
    },
  }));
}

/**
 * Schedule occurrences that did not fire on time: the latest occurrence older than `graceMs` with
 * no fire recorded for it (the scheduler is stopped or failing), and fires made more than
 * `graceMs` late (the server was down; the scheduler fires only the latest missed occurrence).
 */
export async function missedSchedules(
  db: Queryable,
  policies: Policy[],
  now: Date,
  graceMs: number,
  lookbackMs: number,
): Promise<NewAlert[]> {
  const alerts: NewAlert[] = [];
  const missed = (p: Pick<Policy, 'id' | 'name' | 'timeZone'>, scheduledFor: string, why: string): NewAlert => ({
    key: `schedule-missed:${p.id}:${scheduledFor}`,
    kind: 'schedule-missed',
    subject: `Policy ${p.name} missed its ${scheduledFor} run`,
    details: { policyId: p.id, policy: p.name, scheduledFor, timeZone: p.timeZone, why },
  });
  for (const p of policies.filter((x) => x.enabled)) {
    const latest = new Cron(p.cron, { timezone: p.timeZone, paused: true }).previousRuns(
      1,
      new Date(now.getTime() - graceMs),
    )[0];
    if (!latest || latest.getTime() <= Date.parse(p.updatedAt)) continue;
    const [fired] = await db.query(
      'SELECT 1 FROM schedule_fires WHERE policy_id = $1 AND scheduled_for >= $2 LIMIT 1',
      [p.id, latest.toISOString()],
    );
    if (!fired)
      alerts.push(
        missed(
          p,
          latest.toISOString(),
          `not started ${Math.round(graceMs / 1000)} s after it was due: is the scheduler running?`,
        ),
      );
  }
  const late = await db.query<{ policy_id: string; scheduled_for: Date | string; fired_at: Date | string }>(
    `SELECT policy_id, scheduled_for, fired_at FROM schedule_fires
     WHERE fired_at >= $1 AND fired_at - scheduled_for > $2::float8 * interval '1 millisecond'`,
    [new Date(now.getTime() - lookbackMs).toISOString(), graceMs],
  );
  for (const f of late) {
    const p = policies.find((x) => x.id === f.policy_id);
    if (p)
      alerts.push(
        missed(
          p,
          new Date(f.scheduled_for).toISOString(),
          `started late, at ${new Date(f.fired_at).toISOString()} (was the server down?)`,
        ),
      );
  }
  return alerts;
}

/** VMs of the inventory that no enabled policy selects: one event per VM. */
export function unprotectedVms(vms: InventoryVm[], policies: Policy[]): NewAlert[] {
  return vms
    .filter((vm) => !isProtected(vm, policies))
    .map((vm) => ({
      key: `vm-unprotected:${vm.id}`,
      kind: 'vm-unprotected',
      subject: `VM ${vm.name} is not protected by any policy`,
      details: { vm: vm.name, vmId: vm.id, resourceGroup: vm.resourceGroup, region: vm.region },
    }));
}
