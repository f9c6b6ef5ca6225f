import { randomBytes, randomUUID } from 'node:crypto';
import type { Queryable } from '../catalog/database.ts';
import { InvalidInputError, NotFoundError } from '../catalog/errors.ts';
import { SecretBox } from '../catalog/secret-box.ts';
import { errorMessage } from '../../util/errors.ts';

export const AlertKinds = ['run-failed', 'schedule-missed', 'vm-unprotected', 'check-failed'] as const;
export type AlertKind = (typeof AlertKinds)[number];

/** Where alerts go: a webhook (JSON POST signed with HMAC-SHA256) or e-mail recipients. */
export interface AlertChannel {
  id: string;
  name: string;
  kind: 'webhook' | 'email';
  /** The webhook URL, or comma-separated e-mail addresses. */
  target: string;
  /** Kinds of events sent there; empty: all. */
  events: AlertKind[];
  enabled: boolean;
  createdAt: string;
}

export interface AlertEvent {
  /** Names the event once for all: `run-failed:<run id>`, `vm-unprotected:<vm id>`… */
  key: string;
  kind: AlertKind;
  subject: string;
  details: Record<string, unknown>;
  createdAt: string;
}

export interface AlertDelivery {
  eventKey: string;
  channelId: string;
  channelName: string;
  state: 'pending' | 'sent' | 'failed';
  attempts: number;
  lastError: string | null;
  sentAt: string | null;
}

export interface DueDelivery {
  event: AlertEvent;
  channel: AlertChannel & { secret: string | null };
  attempts: number;
}

/** Where a channel's sealed secret belongs (the associated data of its box). */
const secretPlace = (channelId: string) => `alert_channels.secret:${channelId}`;

/** Alert channels, events and deliveries in the catalog. Webhook secrets are stored sealed (catalog/secret-box.ts). */
export class AlertStore {
  readonly db: Queryable;
  private readonly box: SecretBox;
  constructor(db: Queryable, box: SecretBox) {
    this.db = db;
    this.box = box;
  }

  /** Seals the plaintext secrets an older server stored; returns how many. Idempotent. */
  async sealPlaintextSecrets(): Promise<number> {
    const rows = await this.db.query<{ id: string; secret: string }>(
      'SELECT id, secret FROM alert_channels WHERE secret IS NOT NULL',
    );
    let sealed = 0;
    for (const r of rows.filter((x) => !SecretBox.isSealed(x.secret))) {
      await this.db.query('UPDATE alert_channels SET secret = $2 WHERE id = $1 AND secret = $3', [
        r.id,
        this.box.seal(r.secret, secretPlace(r.id)),
        r.secret,
      ]);
      sealed++;
    }
    return sealed;
  }

  /** A channel's signing secret, opened. */
  async secretOf(channelId: string): Promise<string | null> {
    const [row] = await this.db.query<{ secret: string | null }>('SELECT secret FROM alert_channels WHERE id = $1', [
      channelId,
    ]);
    return row?.secret ? this.box.open(row.secret, secretPlace(channelId)) : null;
  }

  /**
   * Adds a channel. A webhook gets a signing secret (generated unless given), returned only here:
   * the receiver checks X-Goldsnap-Signature with it.
   */
  async createChannel(input: {
    name: string;
    kind: 'webhook' | 'email';
    target: string;
    events?: AlertKind[];
    secret?: string;
  }): Promise<{ channel: AlertChannel; secret?: string }> {
    if (input.kind === 'webhook') {
      let url: URL;
      try {
        url = new URL(input.target);
      } catch {
        throw new InvalidInputError('target', `${input.target} is not a URL`);
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:')
        throw new InvalidInputError('target', 'a webhook URL starts with https:// (or http://)');
    } else if (!input.target.split(',').every((a) => /^[^\s@,]+@[^\s@,]+$/.test(a.trim()))) {
      throw new InvalidInputError('target', 'expected e-mail addresses separated by commas');
    }
    const secret = input.kind === 'webhook' ? (input.secret ?? randomBytes(24).toString('base64url')) : null;
    const id = randomUUID();
    try {
      await this.db.query(
        'INSERT INTO alert_channels (id, name, kind, target, secret, events) VALUES ($1, $2, $3, $4, $5, $6)',
        [
          id,
          input.name,
          input.kind,
          input.target,
          secret && this.box.seal(secret, secretPlace(id)),
          JSON.stringify(input.events ?? []),
        ],
      );
    } catch (err) {
      if (/unique|duplicate/i.test(errorMessage(err)))
        throw new InvalidInputError('name', `a channel named ${input.name} exists already`);
      throw err;
    }
    const channel = await this.getChannel(id);
    return { channel, ...(secret ? { secret } : {}) };
  }

  async getChannel(idOrName: string): Promise<AlertChannel> {
    const [row] = await this.db.query<ChannelRow>('SELECT * FROM alert_channels WHERE id = $1 OR name = $1', [
      idOrName,
    ]);
    if (!row) throw new NotFoundError('alert channel', idOrName);
    return channelFromRow(row);
  }

  async listChannels(): Promise<AlertChannel[]> {
    return (await this.db.query<ChannelRow>('SELECT * FROM alert_channels ORDER BY name')).map(channelFromRow);
  }

  async deleteChannel(idOrName: string): Promise<AlertChannel> {
    const channel = await this.getChannel(idOrName);
    await this.db.query('DELETE FROM alert_channels WHERE id = $1', [channel.id]);
    return channel;
  }

  /**
   * Records an event once: true if it is new, and then a delivery is queued for every enabled
   * channel that wants its kind. The same key again (next scan, another server) does nothing.
   */
  async raise(event: Omit<AlertEvent, 'createdAt'>): Promise<boolean> {
    const inserted = await this.db.query(
      'INSERT INTO alert_events (key, kind, subject, details) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING key',
      [event.key, event.kind, event.subject, JSON.stringify(event.details)],
    );
    if (!inserted.length) return false;
    await this.db.query(
      `INSERT INTO alert_deliveries (event_key, channel_id)
       SELECT $1, id FROM alert_channels WHERE enabled AND (events = '[]'::jsonb OR events ? $2) ON CONFLICT DO NOTHING`,
      [event.key, event.kind],
    );
    return true;
  }

  async hasEvent(key: string): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM alert_events WHERE key = $1', [key])).length > 0;
  }

  /** Deliveries due now, claimed for `leaseMs` so that another server does not send them too. */
  async claimDue(limit: number, leaseMs: number): Promise<DueDelivery[]> {
    const rows = await this.db.query<
      DeliveryRow &
        ChannelRow & {
          ev_kind: AlertKind;
          subject: string;
          details: Record<string, unknown>;
          ev_created_at: Date | string;
        }
    >(
      `WITH due AS (
         UPDATE alert_deliveries SET next_at = now() + $2::float8 * interval '1 millisecond'
         WHERE (event_key, channel_id) IN (
           SELECT event_key, channel_id FROM alert_deliveries WHERE state = 'pending' AND next_at <= now() ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING *)
       SELECT due.*, c.*, e.kind AS ev_kind, e.subject, e.details, e.created_at AS ev_created_at
       FROM due JOIN alert_channels c ON c.id = due.channel_id JOIN alert_events e ON e.key = due.event_key`,
      [limit, leaseMs],
    );
    return rows.map((r) => ({
      attempts: Number(r.attempts),
      event: {
        key: r.event_key,
        kind: r.ev_kind,
        subject: r.subject,
        details: r.details,
        createdAt: new Date(r.ev_created_at).toISOString(),
      },
      channel: { ...channelFromRow(r), secret: r.secret && this.box.open(r.secret, secretPlace(r.id)) },
    }));
  }

  async markSent(eventKey: string, channelId: string): Promise<void> {
    await this.db.query(
      `UPDATE alert_deliveries SET state = 'sent', attempts = attempts + 1, sent_at = now(), last_error = NULL WHERE event_key = $1 AND channel_id = $2`,
      [eventKey, channelId],
    );
  }

  /** A failed attempt: retried after `retryMs`, or given up once `maxAttempts` were made. */
  async markFailed(
    eventKey: string,
    channelId: string,
    error: string,
    retryMs: number,
    maxAttempts: number,
  ): Promise<void> {
    await this.db.query(
      `UPDATE alert_deliveries SET attempts = attempts + 1, last_error = $3,
         state = CASE WHEN attempts + 1 >= $5 THEN 'failed' ELSE 'pending' END,
         next_at = now() + $4::float8 * interval '1 millisecond'
       WHERE event_key = $1 AND channel_id = $2`,
      [eventKey, channelId, error.slice(0, 500), retryMs, maxAttempts],
    );
  }

  /** Events newest first, each with what became of its deliveries. */
  async listEvents(limit = 100): Promise<Array<AlertEvent & { deliveries: AlertDelivery[] }>> {
    const events = await this.db.query<{
      key: string;
      kind: AlertKind;
      subject: string;
      details: Record<string, unknown>;
      created_at: Date | string;
    }>('SELECT * FROM alert_events ORDER BY created_at DESC, key LIMIT $1', [limit]);
    const deliveries = await this.db.query<DeliveryRow & { name: string }>(
      `SELECT d.*, c.name FROM alert_deliveries d JOIN alert_channels c ON c.id = d.channel_id WHERE d.event_key = ANY($1::text[])`,
      [events.map((e) => e.key)],
    );
    return events.map((e) => ({
      key: e.key,
      kind: e.kind,
      subject: e.subject,
      details: e.details,
      createdAt: new Date(e.created_at).toISOString(),
      deliveries: deliveries
        .filter((d) => d.event_key === e.key)
        .map((d) => ({
          eventKey: d.event_key,
          channelId: d.channel_id,
          channelName: d.name,
          state: d.state,
          attempts: Number(d.attempts),
          lastError: d.last_error,
          sentAt: d.sent_at ? new Date(d.sent_at).toISOString() : null,
        })),
    }));
  }
}

interface ChannelRow {
  id: string;
  name: string;
  kind: 'webhook' | 'email';
  target: string;
  secret: string | null;
  events: AlertKind[];
  enabled: boolean;
  created_at: Date | string;
}
interface DeliveryRow {
  event_key: string;
  channel_id: string;
  state: 'pending' | 'sent' | 'failed';
  attempts: number;
  last_error: string | null;
  sent_at: Date | string | null;
}

function channelFromRow(r: ChannelRow): AlertChannel {
  return {
    id: r.id,
    name: r.name,
    kind: r.kind,
    target: r.target,
    events: r.events,
    enabled: r.enabled,
    createdAt: new Date(r.created_at).toISOString(),
  };
}
