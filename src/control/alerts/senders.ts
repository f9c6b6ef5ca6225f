import { createHmac } from 'node:crypto';
import nodemailer, { type Transporter } from 'nodemailer';
import type { AlertChannel, AlertEvent } from './alert-store.ts';

/** What a webhook receives (JSON) and what an e-mail says. */
export function alertPayload(event: AlertEvent): Record<string, unknown> {
  return { event: event.kind, key: event.key, subject: event.subject, details: event.details, at: event.createdAt };
}

/**
 * The signature of a webhook body: hex HMAC-SHA256, keyed with the channel's secret, of
 * `<timestamp>.<body>` (the timestamp is sent in X-Goldsnap-Timestamp, so a replay of an old body
 * can be told by its age). Receivers recompute it and compare in constant time.
 */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export interface MailSettings {
  /** smtp://user:pass@host:port or smtps://… (env GOLDSNAP_SMTP_URL). */
  smtpUrl?: string;
  /** Sender address (env GOLDSNAP_ALERT_FROM). */
  from: string;
}

export function mailSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): MailSettings {
  return { smtpUrl: env.GOLDSNAP_SMTP_URL || undefined, from: env.GOLDSNAP_ALERT_FROM || 'goldsnap@localhost' };
}

/** Sends one event to one channel; throws with what went wrong (the caller retries). */
export class AlertSender {
  private readonly mail: MailSettings;
  private transport?: Transporter;

  constructor(mail: MailSettings) {
    this.mail = mail;
  }

  async send(channel: AlertChannel & { secret: string | null }, event: AlertEvent): Promise<void> {
    if (channel.kind === 'webhook') return this.sendWebhook(channel, event);
    return this.sendMail(channel, event);
  }

  private async sendWebhook(channel: AlertChannel & { secret: string | null }, event: AlertEvent): Promise<void> {
    const body = JSON.stringify(alertPayload(event));
    const timestamp = String(Math.floor(Date.now() / 1000));
    const res = await fetch(channel.target, {
      method: 'POST',
      body,
      signal: AbortSignal.timeout(15_000),
      headers: {
        'content-type': 'application/json',
        'user-agent': 'goldsnap-alerts/1',
        'x-goldsnap-event': event.kind,
        'x-goldsnap-delivery': event.key,
        'x-goldsnap-timestamp': timestamp,
        ...(channel.secret ? { 'x-goldsnap-signature': signWebhook(channel.secret, timestamp, body) } : {}),
      },
    });
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok) throw new Error(`webhook ${new URL(channel.target).host} answered HTTP ${res.status}`);
  }

  private async sendMail(channel: AlertChannel, event: AlertEvent): Promise<void> {
    if (!this.mail.smtpUrl)
      throw new Error('no SMTP server: set GOLDSNAP_SMTP_URL (smtp://user:pass@host:port) on the server');
    this.transport ??= nodemailer.createTransport(this.mail.smtpUrl);
    const lines = [
      event.subject,
      '',
      ...Object.entries(event.details).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`),
      '',
      `event ${event.key} at ${event.createdAt}`,
    ];
    await this.transport.sendMail({
      from: this.mail.from,
      to: channel.target,
      subject: `[goldsnap] ${event.subject}`,
      text: lines.join('\n'),
      headers: { 'X-Goldsnap-Event': event.kind, 'X-Goldsnap-Delivery': event.key },
    });
  }

  close(): void {
    this.transport?.close();
  }
}
