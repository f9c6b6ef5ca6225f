import type { Database } from '../catalog/database.ts';
import type { PolicyStore } from '../catalog/policies.ts';
import type { SqlRunStore } from '../catalog/run-store.ts';
import type { SecretBox } from '../catalog/secret-box.ts';
import { AlertStore } from './alert-store.ts';
import { failedRuns, missedSchedules, unprotectedVms, type NewAlert } from './detect.ts';
import { AlertSender, type MailSettings } from './senders.ts';
import { errorMessage } from '../../util/errors.ts';

export interface AlerterOptions {
  db: Database;
  runs: SqlRunStore;
  policies: PolicyStore;
  mail: MailSettings;
  /** Seals webhook secrets in the catalog. */
  secrets: SecretBox;
  log: (line: string) => void;
  /** A schedule occurrence not fired this long after it was due is missed (default 5 min). */
  scheduleGraceMs?: number;
  /** First retry of a failed delivery after this long, doubling up to an hour (default 1 min). */
  retryMs?: number;
  /** Attempts per delivery before it is given up (default 8). */
  maxAttempts?: number;
}

const DAY = 86_400_000;

/**
 * Finds what operators must hear of (failed runs, missed schedules, unprotected VMs), records each
 * event once in the catalog, and delivers it to the alert channels with retries. It runs on its
 * own timer and only reads what runs write: a slow or failing webhook never holds up a backup.
 */
export class Alerter {
  readonly store: AlertStore;
  private readonly opts: AlerterOptions;
  private readonly sender: AlertSender;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = true;

  constructor(opts: AlerterOptions) {
    this.opts = opts;
    this.store = new AlertStore(opts.db, opts.secrets);
    this.sender = new AlertSender(opts.mail);
  }

  /** One scan and one round of deliveries. */
  async tick(now = new Date()): Promise<void> {
    const found: NewAlert[] = [];
    const policies = await this.opts.policies.list();
    const detectors: Array<[string, () => Promise<NewAlert[]>]> = [
      ['failed runs', () => failedRuns(this.opts.db, now, DAY)],
      [
        'missed schedules',
        () => missedSchedules(this.opts.db, policies, now, this.opts.scheduleGraceMs ?? 300_000, DAY),
      ],
      ['unprotected VMs', async () => unprotectedVms(await this.opts.runs.listVms(), policies)],
    ];
    for (const [what, detect] of detectors) {
      try {
        found.push(...(await detect()));
      } catch (err) {
        this.opts.log(`alerts: looking for ${what} failed: ${errorMessage(err)}`);
      }
    }
    for (const alert of found) {
      if (await this.store.raise(alert)) this.opts.log(`alert: ${alert.subject}`);
    }
    await this.deliver();
  }

  private async deliver(): Promise<void> {
    const retryMs = this.opts.retryMs ?? 60_000;
    const maxAttempts = this.opts.maxAttempts ?? 8;
    for (const due of await this.store.claimDue(20, 120_000)) {
      try {
        await this.sender.send(due.channel, due.event);
        await this.store.markSent(due.event.key, due.channel.id);
      } catch (err) {
        const message = errorMessage(err);
        const wait = Math.min(3_600_000, retryMs * 2 ** due.attempts);
        await this.store.markFailed(due.event.key, due.channel.id, message, wait, maxAttempts);
        this.opts.log(
          `alert ${due.event.key} to ${due.channel.name}: ${message}${due.attempts + 1 >= maxAttempts ? ' (given up)' : ` (retry in ${Math.round(wait / 1000)} s)`}`,
        );
      }
    }
  }

  /** Sends a test event to one channel now, outside the catalog's events; throws what went wrong. */
  async sendTest(channelRef: string): Promise<void> {
    const channel = await this.store.getChannel(channelRef);
    await this.sender.send(
      { ...channel, secret: await this.store.secretOf(channel.id) },
      {
        key: `test:${Date.now()}`,
        kind: 'run-failed',
        subject: `Test alert to ${channel.name}`,
        details: { test: true },
        createdAt: new Date().toISOString(),
      },
    );
  }

  start(intervalMs = 30_000): void {
    if (!this.stopped) return;
    this.stopped = false;
    const sealed = this.store.sealPlaintextSecrets().then(
      (n) => n > 0 && this.opts.log(`alerts: sealed ${n} webhook secret(s) stored in plaintext by an older server`),
      (err) => this.opts.log(`alerts: could not seal plaintext webhook secrets: ${errorMessage(err)}`),
    );
    const loop = async () => {
      await sealed;
      this.running = this.tick().catch((err) => this.opts.log(`alerts: ${errorMessage(err)}`));
      await this.running;
      this.running = undefined;
      if (!this.stopped) {
        this.timer = setTimeout(loop, intervalMs);
        this.timer.unref();
      }
    };
    void loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    this.sender.close();
  }
}
