import { GOLDSNAP_TAGS, VmPointUnsupportedError, type Cloud, type Consistency } from '../../cloud/cloud.ts';
import { DEFAULT_SCRIPT_TIMEOUT_SECONDS, type ConsistencyOption } from '../catalog/policy-consistency.ts';
import type { RunContext } from './backup-run.ts';
import type { Run } from './run-model.ts';

/** What a run takes from its policy's consistency option. */
export function runConsistency(option: ConsistencyOption | undefined): Pick<Run, 'wantConsistency' | 'scripts'> {
  if (option?.mode !== 'application') return {};
  const timeoutSeconds = option.scriptTimeoutSeconds ?? DEFAULT_SCRIPT_TIMEOUT_SECONDS;
  return {
    wantConsistency: 'application',
    ...(option.preScript || option.postScript
      ? {
          scripts: {
            ...(option.preScript ? { pre: option.preScript } : {}),
            ...(option.postScript ? { post: option.postScript } : {}),
            timeoutSeconds,
          },
        }
      : {}),
  };
}

/**
 * Runs a guest script; true when it succeeded. A failure or timeout is a warning on the run, not
 * an error: the backup goes on (crash-consistent after a failed pre-script).
 */
async function guestScript(
  ctx: RunContext,
  run: Run,
  which: 'pre' | 'post',
  script: string,
  timeoutSeconds: number,
): Promise<boolean> {
  if (!ctx.cloud.runScript) {
    warn(ctx, run, `the ${ctx.cloud.kind} cloud cannot run scripts in the guest: the ${which}-script was skipped`);
    return false;
  }
  const r = await ctx.cloud
    .runScript({ id: run.vmId }, script, timeoutSeconds)
    .catch((err: Error) => ({ ok: false, timedOut: false, exitCode: undefined, output: err.message }));
  if (r.ok) return true;
  const why = r.timedOut
    ? `did not finish within ${timeoutSeconds} s`
    : r.exitCode !== undefined
      ? `failed with exit status ${r.exitCode}`
      : 'failed';
  warn(
    ctx,
    run,
    `the ${which}-script ${why}${r.output ? ` (${r.output.replace(/\s+/g, ' ').trim().slice(0, 300)})` : ''}`,
  );
  return false;
}

/** Name of the VM point (restore point) a run makes: unique per run, so a resumed create finds it. */
export function vmPointName(run: Run): string {
  return `goldsnap-${run.id}`;
}

function warn(ctx: RunContext, run: Run, message: string): void {
  (run.warnings ??= []).push(message);
  ctx.log(`run ${run.id.slice(0, 8)} (${run.vmName}): warning: ${message}`);
}

/**
 * Takes one instant of every disk of the run's VM (a VM restore point on Azure) and records each
 * disk's point as the disk's snapshot of this run. When the cloud or the VM cannot, it returns
 * `per-disk` with a warning on the run, and the run snapshots disk by disk as before.
 */
export async function takeVmPoint(ctx: RunContext, run: Run): Promise<Consistency> {
  if (!ctx.cloud.createVmPoint) {
    warn(
      ctx,
      run,
      `the ${ctx.cloud.kind} cloud cannot take one instant of a VM: each disk is snapshotted on its own (per-disk consistency)`,
    );
    return 'per-disk';
  }
  let wanted = run.wantConsistency ?? 'crash';
  const vm = await ctx.cloud.getVm(run.vmId);
  const scripts = wanted === 'application' ? run.scripts : undefined;
  // A failed pre-script leaves the application as it was: the point is then only crash-consistent.
  if (scripts?.pre && !(await guestScript(ctx, run, 'pre', scripts.pre, scripts.timeoutSeconds))) {
    wanted = 'crash';
    warn(ctx, run, 'the restore point is crash-consistent because the pre-script failed');
  }
  let point;
  try {
    point = await ctx.cloud.createVmPoint({
      vm: {
        id: vm.id,
        name: vm.name,
        region: vm.region,
        resourceGroup: vm.resourceGroup,
        disks: run.disks.map((d) => ({
          id: d.diskId,
          name: d.diskName,
          region: d.region,
          sizeBytes: d.sizeBytes,
          role: d.role,
          ...(d.lun === undefined ? {} : { lun: d.lun }),
        })),
      },
      name: vmPointName(run),
      consistency: wanted,
      tags: { ...GOLDSNAP_TAGS, goldsnapRun: run.id, goldsnapVm: run.vmId },
    });
  } catch (err) {
    if (scripts?.post) await guestScript(ctx, run, 'post', scripts.post, scripts.timeoutSeconds);
    if (!(err instanceof VmPointUnsupportedError)) throw err;
    warn(ctx, run, `${err.message}; each disk is snapshotted on its own (per-disk consistency)`);
    return 'per-disk';
  }
  // Thaw as soon as the instant is taken; its failure is a warning, the point is already made.
  if (scripts?.post) await guestScript(ctx, run, 'post', scripts.post, scripts.timeoutSeconds);
  for (const disk of run.disks) {
    const own = point.disks.find((s) => s.diskId.toLowerCase() === disk.diskId.toLowerCase())!;
    const golden = await ctx.store.getGolden(disk.diskId);
    Object.assign(disk, {
      snapshotId: own.id,
      baseSnapshotId: golden?.snapshotId,
      parentFixedIndex: golden?.fixedIndex,
      bytesTotal: own.sizeBytes,
    });
  }
  run.vmPointId = point.id;
  if (wanted === 'application' && point.consistency !== 'application')
    warn(ctx, run, 'the restore point is crash-consistent, not application-consistent as the policy asks');
  return point.consistency;
}

/** Deletes the run's own VM point (also one made but not yet recorded), unless it holds a golden. */
export async function deleteOwnVmPoints(
  cloud: Cloud,
  run: Run,
  isGolden: (snapshotId: string) => Promise<boolean>,
): Promise<void> {
  if (!cloud.listGoldsnapVmPoints || !cloud.deleteVmPoint) return;
  for (const p of await cloud.listGoldsnapVmPoints()) {
    if (p.runId !== run.id && p.id.toLowerCase() !== run.vmPointId?.toLowerCase()) continue;
    let golden = false;
    for (const d of p.diskPointIds) if (await isGolden(d)) golden = true;
    if (!golden) await cloud.deleteVmPoint(p.id);
  }
}

/**
 * VM points that nothing needs: none of their disk points is a golden, and the run that made them
 * has finished. Points of runs this catalog does not know are only reported.
 */
export async function sweepLeakedVmPoints(
  cloud: Cloud,
  golden: Set<string>,
  findRun: (id: string) => Promise<Run | undefined>,
  log: (line: string) => void,
): Promise<string[]> {
  if (!cloud.listGoldsnapVmPoints || !cloud.deleteVmPoint) return [];
  const deleted: string[] = [];
  for (const p of await cloud.listGoldsnapVmPoints()) {
    if (p.diskPointIds.some((d) => golden.has(d.toLowerCase()))) continue;
    const run = p.runId ? await findRun(p.runId) : undefined;
    if (!run) {
      log(`restore point ${p.id} carries Goldsnap's name but no run of this catalog made it: left alone`);
      continue;
    }
    if (run.step !== 'succeeded' && run.step !== 'failed') continue;
    await cloud.deleteVmPoint(p.id);
    log(`restore point ${p.id.split('/').pop()} of finished run ${run.id.slice(0, 8)} was left behind: deleted`);
    deleted.push(p.id);
  }
  return deleted;
}
