import { hostname } from 'node:os';
import { Cron } from 'croner';
import { ChunkCodec } from '../../dataplane/chunk-codec.ts';
import { type CheckReport, checkRepository } from '../../repository/check.ts';
import type { Repository } from '../../repository/repository.ts';
import { errorMessage } from '../../util/errors.ts';
import type { AlertStore } from '../alerts/alert-store.ts';
import type { Queryable } from '../catalog/database.ts';
import { CheckStore, type RepositoryCheck } from './check-store.ts';

/** When and how deeply the server checks its repository. */
export interface CheckSettings {
  /** Cron expression (five fields, or six with seconds); undefined: no scheduled checks. */
  schedule?: string;
  timeZone: string;
  /** Share of packs (0–100) downloaded, decrypted and re-hashed by each check; 0: metadata only. */
  readDataPercent: number;
}

/**
 * From the environment:
 *   GOLDSNAP_CHECK_SCHEDULE           cron of the checks (default `30 3 * * *`, daily at 03:30); `off` for none
 *   GOLDSNAP_CHECK_TIME_ZONE          its time zone (default UTC)
 *   GOLDSNAP_CHECK_READ_DATA_PERCENT  packs read whole per check, 0–100 (default 0: metadata check)
 */
export function checkSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): CheckSettings {
  const schedule = env.GOLDSNAP_CHECK_SCHEDULE?.trim() || '30 3 * * *';
  const timeZone = env.GOLDSNAP_CHECK_TIME_ZONE || 'UTC';
  const percent = Number(env.GOLDSNAP_CHECK_READ_DATA_PERCENT || 0);
  if (!Number.isFinite(percent) || percent < 0 || percent > 100)
    throw new Error(
      `GOLDSNAP_CHECK_READ_DATA_PERCENT=${env.GOLDSNAP_CHECK_READ_DATA_PERCENT}: expected a number from 0 to 100`,
    );
  if (schedule !== 'off') {
    try {
      new Cron(schedule, { timezone: timeZone, paused: true });
    } catch (err) {
      throw new Error(`GOLDSNAP_CHECK_SCHEDULE=${schedule} (${timeZone}): ${errorMessage(err)}`);
    }
  }
  return { ...(schedule === 'off' ? {} : { schedule }), timeZone, readDataPercent: percent };
}

/**
 * Checks the repository on a schedule (src/repository/check.ts: every index, pack header and
 * recovery point; with a read-data share, a random sample of packs read whole and re-hashed),
 * records each result in the catalog and raises a `check-failed` alert once per failed check.
 * Each occurrence is claimed in the catalog first, so several servers check it once.
 */
export class RepositoryChecker {
  readonly store: CheckStore;
  private readonly repo: Repository;
  private readonly alerts: AlertStore;
  private readonly settings: CheckSettings;
  private readonly log: (line: string) => void;
  private readonly server = `${hostname()}:${process.pid}`;
  private timer?: NodeJS.Timeout;
  /** Checks under way (a scheduled one and some started by hand), awaited by stop(). */
  private readonly running = new Set<Promise<unknown>>();
  private stopped = true;

  constructor(opts: {
    db: Queryable;
    repo: Repository;
    alerts: AlertStore;
    settings: CheckSettings;
    log: (line: string) => void;
  }) {
    this.store = new CheckStore(opts.db);
    this.repo = opts.repo;
    this.alerts = opts.alerts;
    this.settings = opts.settings;
    this.log = opts.log;
  }

  /**
   * Runs one check now (for `scheduledFor`, or by hand when null) and returns its record, or
   * undefined when another server claimed that occurrence.
   */
  async runCheck(
    scheduledFor: Date | null,
    readDataPercent = this.settings.readDataPercent,
  ): Promise<RepositoryCheck | undefined> {
    const check = await this.store.begin(
      scheduledFor,
      readDataPercent > 0 ? `${readDataPercent}%` : 'none',
      this.server,
    );
    if (!check) return undefined;
    return this.track(this.check(check, readDataPercent));
  }

  /** Starts a check by hand and answers at once with its record (running). */
  async startCheck(readDataPercent = this.settings.readDataPercent): Promise<RepositoryCheck> {
    const check = await this.store.begin(null, readDataPercent > 0 ? `${readDataPercent}%` : 'none', this.server);
    void this.track(this.check(check!, readDataPercent)).catch((err) =>
      this.log(`repository check: ${errorMessage(err)}`),
    );
    return check!;
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.running.add(work);
    void work.finally(() => this.running.delete(work)).catch(() => undefined);
    return work;
  }

  private async check(check: RepositoryCheck, readDataPercent: number): Promise<RepositoryCheck> {
    this.log(`repository check ${check.id}: started (read data: ${check.readData})`);
    const codec = readDataPercent > 0 ? new ChunkCodec(this.repo.key, 1) : undefined;
    let report: CheckReport;
    try {
      report = await checkRepository(this.repo, {
        readData: readDataPercent > 0,
        ...(codec ? { codec } : {}),
        readPack: () => Math.random() * 100 < readDataPercent,
      });
    } catch (err) {
      report = {
        errors: [`the check could not run: ${errorMessage(err)}`],
        warnings: [],
        advice: [],
        packs: 0,
        chunks: 0,
        recoveryPoints: 0,
        bytesRead: 0,
      };
    }
    const finished = await this.store.finish(check.id, report);
    this.log(
      `repository check ${check.id}: ${finished.state}${report.errors.length ? ` (${report.errors.length} errors: ${report.errors[0]})` : ''}`,
    );
    if (finished.state === 'failed') {
      await this.alerts.raise({
        key: `check-failed:${finished.id}`,
        kind: 'check-failed',
        subject: `Repository check ${finished.id} found ${report.errors.length} error(s)`,
        details: {
          checkId: finished.id,
          repository: this.repo.backend.location,
          readData: finished.readData,
          errors: report.errors.slice(0, 20),
          advice: report.advice,
          finishedAt: finished.finishedAt,
        },
      });
    }
    return finished;
  }

  start(): void {
    const { schedule, timeZone } = this.settings;
    if (!schedule || !this.stopped) return;
    this.stopped = false;
    const cron = new Cron(schedule, { timezone: timeZone, paused: true });
    const arm = () => {
      const next = cron.nextRun();
      if (!next || this.stopped) return;
      // Timers longer than about 24.8 days overflow; wake up earlier and look again.
      const wait = Math.min(Math.max(0, next.getTime() - Date.now()), 86_400_000);
      this.timer = setTimeout(async () => {
        if (Date.now() >= next.getTime()) {
          await this.runCheck(next).catch((err) => this.log(`repository check: ${errorMessage(err)}`));
        }
        arm();
      }, wait);
      this.timer.unref();
    };
    arm();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.allSettled([...this.running]);
  }
}
