import { InvalidArgumentError, type Command } from 'commander';
import { parseSize } from '../repository/format.ts';
import type { RetentionPolicy } from '../repository/retention.ts';
import { errorMessage } from '../util/errors.ts';

/** Commander parsers that turn bad input into an error naming the option and the expected form. */
export function sizeArg(value: string): number {
  try {
    return parseSize(value, 'size');
  } catch (err) {
    throw new InvalidArgumentError(errorMessage(err));
  }
}

export function countArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`"${value}" is not a whole number ≥ 0`);
  return n;
}

/** `90s`, `30m`, `1h`, `2d`, or a bare number of seconds, into milliseconds. */
export function durationArg(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`"${value}" is not a duration; write it like 30s, 15m, 1h or 2d`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    (m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  return Number(m[1]) * unit;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export interface KeepOptions {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
}

/** The GFS retention flags, shared by `repo forget` and `policies create`. */
export function keepOptions(cmd: Command): Command {
  return cmd
    .option('--keep-last <n>', 'keep the last n', countArg)
    .option('--keep-hourly <n>', 'keep the newest of each of the last n hours', countArg)
    .option('--keep-daily <n>', 'keep the newest of each of the last n days', countArg)
    .option('--keep-weekly <n>', 'keep the newest of each of the last n weeks', countArg)
    .option('--keep-monthly <n>', 'keep the newest of each of the last n months', countArg)
    .option('--keep-yearly <n>', 'keep the newest of each of the last n years', countArg);
}

/** The retention policy the --keep-* flags ask for (only the rules given). */
export function retentionFrom(opts: KeepOptions): RetentionPolicy {
  const rules = {
    last: opts.keepLast,
    hourly: opts.keepHourly,
    daily: opts.keepDaily,
    weekly: opts.keepWeekly,
    monthly: opts.keepMonthly,
    yearly: opts.keepYearly,
  };
  return Object.fromEntries(Object.entries(rules).filter(([, n]) => n !== undefined));
}
