import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Cloud, CloudVm } from '../../cloud/cloud.ts';
import type { Repository } from '../../repository/repository.ts';
import type { SqlRunStore } from '../catalog/run-store.ts';
import { matchesSelection, type Policy, type PolicyStore } from '../catalog/policies.ts';
import {
  type ControlQueue,
  type JobPayloads,
  ORCHESTRATOR_QUEUE,
  regionOfQueue,
  type RestoreJobPayload,
  transferQueue,
} from '../jobs.ts';
import type { Job, JobChange, JobOf } from '../queue/job-queue.ts';
import { PROXY_CLAIM_RECHECK_MS, PROXY_LEASE_MS, type ProxyProgress, type ProxyWork } from '../proxy/protocol.ts';
import { advanceRun, type RunContext } from './backup-run.ts';
import { runConsistency, sweepLeakedVmPoints } from './vm-point.ts';
import { sweepFailedRestores } from '../restore/restore-sweep.ts';
import type { Run } from './run-model.ts';
import { errorMessage } from '../../util/errors.ts';

export interface OrchestratorDeps {
  runs: SqlRunStore;
  policies: PolicyStore;
  queue: ControlQueue;
  cloud: Cloud;
  repo: Repository;
  log: (line: string) => void;
}

/** How often disks left by failed restores are looked for. */
const RESTORE_SWEEP_MS = Number(process.env.GOLDSNAP_RESTORE_SWEEP_MS ?? 60_000);

/** How long a server holds a run it advances without renewing; another server takes it after. */
const RUN_LEASE_MS = Number(process.env.GOLDSNAP_RUN_LEASE_MS ?? 15_000);

/**
 * The safety net under the notifications: this often every unfinished run and the orchestrator
 * queue are looked at anyway, for a missed notification and for runs whose server died (their
 * lease ran out, which nothing notifies).
 */
export const ORCHESTRATOR_POLL_MS = Number(process.env.GOLDSNAP_ORCHESTRATOR_POLL_MS ?? 10_000);

/** Runs one server advances at once; the others wait their turn (a policy may start thousands). */
const RUN_CONCURRENCY = Number(process.env.GOLDSNAP_RUN_CONCURRENCY ?? 32);

/** A step that failed from commit on is tried again after this long. */
const RETRY_MS = 2000;

/**
 * The control plane's engine room: turns policy fires into runs, advances every active run through
 * its durable steps (backup-run.ts), and serves data proxies their transfer and restore jobs. All
 * state is in the catalog, so a server killed at any instant picks up where it was on restart.
 * A run is written only by the server holding its lease in the catalog; proxies write only their
 * jobs, which the run's transfer step reads. So several servers may share one catalog.
 *
 * Nothing polls at a fast pace: the catalog notifies every job change (queue/job-queue.ts,
 * onChange), from whichever process made it. A policy fire queued wakes the orchestrator queue; a
 * transfer claimed, progressing, done or failed wakes its run. A slow poll is the safety net.
 */
export class Orchestrator {
  private readonly deps: OrchestratorDeps;
  private readonly ctx: RunContext;
  /** Runs being advanced by this process, and the loops doing it (awaited on stop). */
  private readonly advancing = new Map<string, Promise<void>>();
  /** Runs woken while being advanced: advanced once more when their loop ends (no lost wake-up). */
  private readonly again = new Set<string>();
  /** Runs waiting for one of the RUN_CONCURRENCY slots, oldest first. */
  private readonly pending = new Set<string>();
  private readonly retries = new Set<NodeJS.Timeout>();
  private readonly workerId = `server-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  private poller?: NodeJS.Timeout;
  private unlisten?: Promise<(() => Promise<void>) | undefined>;
  private stopping = false;
  private ticking?: Promise<void>;
  private fullWanted = false;
  private queueWanted = false;
  private restoresSweptAt = 0;

  constructor(deps: OrchestratorDeps) {
    this.deps = deps;
    this.ctx = { store: deps.runs, cloud: deps.cloud, repo: deps.repo, log: deps.log };
  }

  /** Listens for job changes and looks at everything now and every `pollMs` (the safety net). */
  start(pollMs = ORCHESTRATOR_POLL_MS): void {
    this.unlisten = this.deps.queue
      .onChange((change) => this.onJobChange(change))
      .catch((err) => {
        this.deps.log(`orchestrator: cannot listen for job changes, polling every ${pollMs} ms: ${errorMessage(err)}`);
        return undefined;
      });
    this.poller = setInterval(() => this.wake(true), pollMs);
    this.wake(true);
  }

  /**
   * Stops ticking and gives the steps under way a few seconds to finish; one still going (waiting
   * for a snapshot's copy, say) is left: its run resumes where it was at the next start.
   */
  async stop(): Promise<void> {
    clearInterval(this.poller);
    this.poller = undefined;
    this.stopping = true;
    for (const t of this.retries) clearTimeout(t);
    this.pending.clear();
    await (await this.unlisten)?.().catch(() => undefined);
    await this.ticking;
    await Promise.race([
      Promise.all(this.advancing.values()),
      new Promise((resolve) => setTimeout(resolve, 10_000).unref()),
    ]);
  }

  private onJobChange(change: JobChange): void {
    // The LISTEN connection was made again: what changed meanwhile is unknown.
    if (!change) {
      this.wake(true);
      return;
    }
    if (change.queue === ORCHESTRATOR_QUEUE) {
      if (change.state === 'queued') this.wake(false);
      return;
    }
    // A transfer claimed, progressing, done or failed: its run takes it in. (Queued: the run itself did it.)
    if (change.runId && change.state !== 'queued' && regionOfQueue(change.queue) !== undefined)
      this.advance(change.runId);
  }

  /** Claims the orchestrator queue (and with `full`, looks at every unfinished run) soon, once. */
  private wake(full: boolean): void {
    if (this.stopping) return;
    if (full) this.fullWanted = true;
    else this.queueWanted = true;
    this.ticking ??= (async () => {
      try {
        while ((this.fullWanted || this.queueWanted) && !this.stopping) {
          const all = this.fullWanted;
          this.fullWanted = this.queueWanted = false;
          await (all ? this.tick() : this.claimFires()).catch((err) =>
            this.deps.log(`orchestrator: ${errorMessage(err)}`),
          );
        }
      } finally {
        this.ticking = undefined;
      }
    })();
  }

  /** Everything: the orchestrator queue, every unfinished run no live server holds, the restore sweep. */
  async tick(): Promise<void> {
    await this.claimFires();
    for (const id of await this.deps.runs.activeRunIdsToAdvance()) this.advance(id);
    if (Date.now() - this.restoresSweptAt > RESTORE_SWEEP_MS) {
      this.restoresSweptAt = Date.now();
      await this.sweepFailedRestores();
    }
  }

  private async claimFires(): Promise<void> {
    for (
      let job = await this.deps.queue.claim(ORCHESTRATOR_QUEUE, this.workerId, 60_000);
      job;
      job = await this.deps.queue.claim(ORCHESTRATOR_QUEUE, this.workerId, 60_000)
    ) {
      await this.handleOrchestratorJob(job);
    }
  }

  /** Disks of restores that failed for good (their proxy died on the last attempt) are deleted. */
  sweepFailedRestores(): Promise<string[]> {
    return sweepFailedRestores(this.deps.cloud, this.deps.queue, this.deps.log);
  }

  private async handleOrchestratorJob(job: JobOf<JobPayloads>): Promise<void> {
    try {
      if (job.kind !== 'policy-fire') throw new Error(`unknown orchestrator job kind ${job.kind}`);
      const { policyId, scheduledFor } = job.payload;
      await this.firePolicy(policyId, scheduledFor);
      await this.deps.queue.complete(job.id, this.workerId);
    } catch (err) {
      this.deps.log(`policy fire ${job.id}: ${errorMessage(err)}`);
      await this.deps.queue.fail(job.id, this.workerId, err as Error, { retryAfterMs: 5000 });
    }
  }

  /** Starts a run for every VM the policy selects, except VMs whose previous run is still going. */
  async firePolicy(policyId: string, scheduledFor: string): Promise<Run[]> {
    const policy = await this.deps.policies.get(policyId);
    if (!policy) return [];
    const vms = await this.refreshInventory();
    const started: Run[] = [];
    for (const vm of vms.filter((v) => matchesSelection(policy.selection, v))) {
      const { run } = await this.startRun(vm, policy, scheduledFor);
      // The catalog allows one unfinished run per VM: another one still going means no run now.
      if (run.policyId === policy.id && run.scheduledFor === scheduledFor) started.push(run);
      else this.deps.log(`policy ${policy.name}: ${vm.name} skipped, its run ${run.id.slice(0, 8)} is still going`);
    }
    return started;
  }

  /**
   * Deletes Goldsnap snapshots that nothing needs: not a disk's golden snapshot, and made by a run
   * of this catalog that has finished (so its promote or cleanup should have removed it). Snapshots
   * of runs this catalog does not know may be another installation's: they are only reported.
   */
  async sweepLeakedSnapshots(): Promise<string[]> {
    const golden = new Set((await this.deps.runs.listGolden()).map((g) => g.snapshotId.toLowerCase()));
    const deleted: string[] = [];
    for (const snapshot of await this.deps.cloud.listGoldsnapSnapshots()) {
      if (golden.has(snapshot.id.toLowerCase())) continue;
      const runId = snapshot.tags.goldsnapRun;
      const run = runId ? await this.deps.runs.findRun(runId) : undefined;
      if (!run) {
        this.deps.log(
          `snapshot ${snapshot.name} carries Goldsnap's tag but no run of this catalog made it: left alone`,
        );
        continue;
      }
      if (run.step !== 'succeeded' && run.step !== 'failed') continue;
      await this.deps.cloud.deleteSnapshot(snapshot.id);
      this.deps.log(`snapshot ${snapshot.name} of finished run ${run.id.slice(0, 8)} was left behind: deleted`);
      deleted.push(snapshot.id);
    }
    deleted.push(
      ...(await sweepLeakedVmPoints(this.deps.cloud, golden, (id) => this.deps.runs.findRun(id), this.deps.log)),
    );
    return deleted;
  }

  /** Asks the cloud for its VMs and makes the inventory exactly that: VMs gone from the cloud leave it. */
  async refreshInventory(): Promise<CloudVm[]> {
    const seenAt = new Date();
    const vms = await this.deps.cloud.listVms();
    await this.deps.runs.upsertVms(vms, seenAt);
    await this.deps.runs.forgetVmsNotSeenSince(seenAt);
    return vms;
  }

  /**
   * Creates a run (idempotent per policy, VM and scheduled time) and starts advancing it. When
   * the VM already has an unfinished run, that one comes back with `created: false`.
   */
  async startRun(vm: CloudVm, policy?: Policy, scheduledFor?: string): Promise<{ run: Run; created: boolean }> {
    const id = randomUUID();
    const run = await this.deps.runs.createRun({
      id,
      vmId: vm.id,
      vmName: vm.name,
      ...(policy ? { policyId: policy.id } : {}),
      ...(scheduledFor ? { scheduledFor } : {}),
      ...(policy ? runConsistency(policy.consistency) : {}),
      ...(vm.profile ? { machine: vm.profile } : {}),
      step: 'snapshot',
      createdAt: new Date().toISOString(),
      disks: vm.disks.map((d) => ({
        diskId: d.id,
        diskName: d.name,
        region: d.region,
        sizeBytes: d.sizeBytes,
        role: d.role,
        ...(d.lun === undefined ? {} : { lun: d.lun }),
        ...(d.profile ? { profile: d.profile } : {}),
        bytesDone: 0,
        bytesTotal: d.sizeBytes,
        transferred: false,
      })),
    });
    this.advance(run.id);
    return { run, created: run.id === id };
  }

  /**
   * Advances a run until it waits for transfers or is done: one loop per run in this process, at
   * most RUN_CONCURRENCY at once, and only while this server holds the run's lease in the catalog.
   * A run woken while its loop is going is advanced once more after it.
   */
  private advance(runId: string): void {
    if (this.stopping) return;
    if (this.advancing.has(runId)) {
      this.again.add(runId);
      return;
    }
    this.pending.add(runId);
    this.pump();
  }

  private pump(): void {
    for (const runId of this.pending) {
      if (this.advancing.size >= RUN_CONCURRENCY || this.stopping) return;
      this.pending.delete(runId);
      if (this.advancing.has(runId)) this.again.add(runId);
      else this.advancing.set(runId, this.advanceLoop(runId));
    }
  }

  private async advanceLoop(runId: string): Promise<void> {
    // Started from pump(), which sets the map entry after this returns its promise.
    await Promise.resolve();
    let leased = false;
    let failed = false;
    const renew = setInterval(
      () => void this.deps.runs.leaseRun(runId, this.workerId, RUN_LEASE_MS).catch(() => undefined),
      RUN_LEASE_MS / 3,
    );
    try {
      leased = await this.deps.runs.leaseRun(runId, this.workerId, RUN_LEASE_MS);
      while (leased && !this.stopping && (await advanceRun(this.ctx, runId)) === 'again');
    } catch (err) {
      // Steps from commit on are retried a little later rather than abandoned.
      failed = true;
      this.deps.log(`run ${runId.slice(0, 8)}: ${errorMessage(err)} (will retry)`);
    } finally {
      clearInterval(renew);
      if (leased) await this.deps.runs.releaseRun(runId, this.workerId).catch(() => undefined);
      this.advancing.delete(runId);
      if (this.again.delete(runId) && !failed) this.pending.add(runId);
      if (failed && !this.stopping) {
        const t = setTimeout(() => {
          this.retries.delete(t);
          this.advance(runId);
        }, RETRY_MS);
        this.retries.add(t);
      }
      this.pump();
    }
  }

  // -- data proxies --------------------------------------------------------------------------

  /**
   * Hands a proxy of `region` its next job, with everything it needs to do it. With `waitMs`, a
   * long poll: when there is no job yet, waits for one (woken by the catalog's notification that a
   * job was queued, from any server, and looking again every `recheckMs` for what no notification
   * announces: a retry coming due, a dead proxy's lease running out) until `waitMs` have passed or
   * `signal` aborts (the proxy hung up, the server is stopping). Undefined: no job meanwhile.
   */
  async claimForProxy(
    region: string,
    workerId: string,
    opts: { waitMs?: number; recheckMs?: number; signal?: AbortSignal } = {},
  ): Promise<ProxyWork | undefined> {
    const queue = transferQueue(region);
    const deadline = Date.now() + (opts.waitMs ?? 0);
    for (;;) {
      const job = await this.claimOrWait(queue, workerId, deadline - Date.now(), opts);
      if (!job) return undefined;
      if (job.kind === 'restore') return { jobId: job.id, kind: 'restore', restore: job.payload };
      if (job.kind !== 'transfer') throw new Error(`unknown job kind ${job.kind} on ${transferQueue(region)}`);
      const run = await this.deps.runs.findRun(job.payload.runId);
      const disk = run?.disks.find((d) => d.diskId === job.payload.diskId);
      if (!run || !disk || run.step !== 'transfer' || disk.transferred || !disk.snapshotId) {
        await this.deps.queue.complete(job.id, workerId, { skipped: 'the run no longer needs this transfer' });
        continue;
      }
      const snapshot = await this.deps.cloud.getSnapshot(disk.snapshotId);
      if (!snapshot) {
        // The run's transfer step reads the failure from the job.
        await this.deps.queue.fail(job.id, workerId, `snapshot ${disk.snapshotId} is gone`, { permanent: true });
        this.advance(run.id);
        continue;
      }
      // Without its golden snapshot (deleted by hand), a disk is read in full again: still correct.
      const base = disk.baseSnapshotId ? await this.deps.cloud.getSnapshot(disk.baseSnapshotId) : undefined;
      return {
        jobId: job.id,
        kind: 'transfer',
        runId: run.id,
        diskName: disk.diskName,
        snapshot,
        ...(base && disk.parentFixedIndex ? { base, parentFixedIndex: disk.parentFixedIndex } : {}),
      };
    }
  }

  /** Whether a long poll's LISTEN failed already (said once in the log, not at every claim). */
  private claimWaitBroken = false;

  private async claimOrWait(
    queue: string,
    workerId: string,
    waitMs: number,
    opts: { recheckMs?: number; signal?: AbortSignal },
  ) {
    if (waitMs <= 0 || opts.signal?.aborted) return this.deps.queue.claim(queue, workerId, PROXY_LEASE_MS);
    const timeout = AbortSignal.timeout(waitMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    try {
      return await this.deps.queue.claimNext(queue, workerId, PROXY_LEASE_MS, {
        pollMs: opts.recheckMs ?? PROXY_CLAIM_RECHECK_MS,
        signal,
      });
    } catch (err) {
      // Without notifications (the LISTEN connection cannot be made), answer at once: the proxy
      // asks again after a short pause, as it did before long polls.
      if (!this.claimWaitBroken)
        this.deps.log(
          `proxy claims: cannot wait for the catalog's notifications, answering at once (proxies ask again every 250 ms): ${errorMessage(err)}`,
        );
      this.claimWaitBroken = true;
      return this.deps.queue.claim(queue, workerId, PROXY_LEASE_MS);
    }
  }

  /**
   * Keeps the proxy's lease on its job and records its progress there; false tells the proxy to
   * stop: its lease was lost, or the run no longer wants the transfer (it failed meanwhile).
   */
  async proxyHeartbeat(jobId: number, workerId: string, progress: ProxyProgress): Promise<boolean> {
    if (!(await this.deps.queue.heartbeat(jobId, workerId, PROXY_LEASE_MS, progress))) return false;
    const job = await this.deps.queue.get(jobId);
    if (job?.kind !== 'transfer') return true;
    const run = await this.deps.runs.findRun(job.payload.runId);
    return run?.step === 'transfer' && !run.disks.find((d) => d.diskId === job.payload.diskId)?.transferred;
  }

  /** Records the proxy's result on its job (only the proxy holding it may); the run takes it in. */
  async proxyComplete(jobId: number, workerId: string, result: unknown): Promise<boolean> {
    const job = await this.deps.queue.get(jobId);
    const done = await this.deps.queue.complete(jobId, workerId, result);
    if (done && job?.kind === 'transfer') this.advance(job.payload.runId);
    return done;
  }

  async proxyFail(jobId: number, workerId: string, error: string): Promise<void> {
    const job = await this.deps.queue.get(jobId);
    const outcome = await this.deps.queue.fail(jobId, workerId, error, { retryAfterMs: 2000 });
    this.deps.log(
      `job ${jobId} (${job?.kind}) failed on ${workerId}: ${error}${outcome === 'queued' ? ' (will retry)' : ''}`,
    );
    if (outcome === 'failed' && job?.kind === 'transfer') this.advance(job.payload.runId);
    if (outcome === 'failed' && job?.kind === 'restore')
      await this.sweepFailedRestores().catch((err: Error) => this.deps.log(`restore sweep: ${err.message}`));
  }

  /** Queues a restore on the target region's proxies; follow it with the returned job id. */
  async startRestore(req: Omit<RestoreJobPayload, 'restoreId'>): Promise<Job<RestoreJobPayload, 'restore'>> {
    const payload: RestoreJobPayload = { ...req, restoreId: randomUUID() };
    return this.deps.queue.enqueue({ queue: transferQueue(req.region), kind: 'restore', payload, maxAttempts: 3 });
  }
}
