import { pino, type Logger } from 'pino';

/**
 * The server's structured log: one JSON object a line on stderr (`level`, `time`, `msg`, and for
 * API requests `req`/`res`). Credentials never reach it: request headers are not logged, and the
 * paths below are censored should a caller log them.
 */
export function jsonLogger(): Logger {
  return pino(
    {
      base: { service: 'goldsnap-server', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'headers.authorization',
          '*.token',
          '*.secret',
          '*.password',
          '*.passphrase',
        ],
        censor: '***',
      },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
