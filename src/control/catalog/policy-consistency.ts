import { InvalidInputError } from './errors.ts';

/**
 * How consistent a policy's recovery points should be. `crash` (the default): a VM restore point,
 * every disk at one instant, as after a power cut. `application`: an application-consistent
 * restore point, with an optional pre-script run in the guest before it (to flush and freeze the
 * application) and a post-script after (to thaw it), through the cloud's Run Command. A script
 * that fails or times out costs a warning and a crash-consistent point, never the backup.
 */
export interface ConsistencyOption {
  mode: 'crash' | 'application';
  preScript?: string;
  postScript?: string;
  /** How long a script may take (default 300 s). */
  scriptTimeoutSeconds?: number;
}

export const DEFAULT_SCRIPT_TIMEOUT_SECONDS = 300;
const MAX_SCRIPT_BYTES = 64 * 1024;

export function validateConsistency(value: unknown, field = 'consistency'): ConsistencyOption {
  if (value === undefined || value === null) return { mode: 'crash' };
  if (typeof value !== 'object' || Array.isArray(value))
    throw new InvalidInputError(field, 'must be an object such as {"mode": "application", "preScript": "…"}');
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!['mode', 'preScript', 'postScript', 'scriptTimeoutSeconds'].includes(key))
      throw new InvalidInputError(
        `${field}.${key}`,
        'unknown field (expected mode, preScript, postScript, scriptTimeoutSeconds)',
      );
  }
  const mode = v.mode ?? 'crash';
  if (mode !== 'crash' && mode !== 'application')
    throw new InvalidInputError(`${field}.mode`, `must be "crash" or "application", not ${JSON.stringify(mode)}`);
  const out: ConsistencyOption = { mode };
  for (const key of ['preScript', 'postScript'] as const) {
    const s = v[key];
    if (s === undefined || s === '') continue;
    if (typeof s !== 'string') throw new InvalidInputError(`${field}.${key}`, 'must be the text of a shell script');
    if (Buffer.byteLength(s) > MAX_SCRIPT_BYTES)
      throw new InvalidInputError(`${field}.${key}`, `is longer than ${MAX_SCRIPT_BYTES} bytes`);
    if (mode !== 'application')
      throw new InvalidInputError(`${field}.${key}`, 'scripts run only for mode "application"');
    out[key] = s;
  }
  const t = v.scriptTimeoutSeconds;
  if (t !== undefined) {
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > 5400)
      throw new InvalidInputError(`${field}.scriptTimeoutSeconds`, 'must be a whole number of seconds from 1 to 5400');
    out.scriptTimeoutSeconds = t;
  }
  return out;
}
