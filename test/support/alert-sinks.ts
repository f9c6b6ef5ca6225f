import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

/** What alert tests receive on loopback: a real SMTP server and a webhook receiver. */
export interface MailSink {
  /** GOLDSNAP_SMTP_URL for the server under test. */
  url: string;
  /** Every message delivered, raw, in order. */
  mails: string[];
  close(): Promise<void>;
}

export async function startMailSink(): Promise<MailSink> {
  const mails: string[] = [];
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      let raw = '';
      stream.on('data', (d: Buffer) => {
        raw += d.toString();
      });
      stream.on('end', () => {
        mails.push(raw);
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  return {
    url: `smtp://127.0.0.1:${(smtp.server.address() as AddressInfo).port}`,
    mails,
    close: () => new Promise<void>((resolve) => smtp.close(() => resolve())),
  };
}

export interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  /** The status the receiver answered. */
  status: number;
}

export interface WebhookReceiver {
  /** The webhook's URL to give `goldsnap alerts add-webhook`. */
  url: string;
  /** Every delivery, in order, including those answered with an error. */
  deliveries: Delivery[];
  close(): Promise<void>;
}

/** A webhook receiver; `answer` picks the status of each delivery (200 by default). */
export async function startWebhookReceiver(
  answer: (req: IncomingMessage) => number = () => 200,
): Promise<WebhookReceiver> {
  const deliveries: Delivery[] = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
    });
    req.on('end', () => {
      const status = answer(req);
      deliveries.push({ headers: req.headers, body, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/goldsnap`,
    deliveries,
    close: () => new Promise<void>((resolve) => receiver.close(() => resolve())),
  };
}

/** Whether a delivery carries Goldsnap's signature (HMAC-SHA-256 of "timestamp.body") under `secret`. */
export function signedWith(delivery: Delivery, secret: string): boolean {
  const timestamp = String(delivery.headers['x-goldsnap-timestamp']);
  const expected = `sha256=${createHmac('sha256', secret).update(`${timestamp}.${delivery.body}`).digest('hex')}`;
  const signature = String(delivery.headers['x-goldsnap-signature']);
  return signature.length === expected.length && timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
}
