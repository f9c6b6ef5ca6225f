import { InvalidArgumentError } from 'commander';
import { parseSize } from '../repository/format.ts';

/** Commander parsers that turn bad input into an error naming the option and the expected form. */
export function sizeArg(value: string): number {
  try {
    return parseSize(value, 'size');
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
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
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
