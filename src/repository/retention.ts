/**
 * Grandfather-father-son retention, as restic's `forget` does it: within each group, walking from
 * newest to oldest, keep the newest recovery point of each of the last N hours, days, weeks (ISO),
 * months and years, plus the last N outright. A point is kept if any rule keeps it.
 */
export interface RetentionPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

export interface RetentionDecision<T> {
  item: T;
  keep: boolean;
  /** Rules that keep it, e.g. ["daily", "monthly"]. */
  reasons: string[];
}

const RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

export function validatePolicy(policy: RetentionPolicy): void {
  for (const rule of RULES) {
    const n = policy[rule];
    if (n !== undefined && (!Number.isInteger(n) || n < 0))
      throw new Error(`keep-${rule} must be a whole number ≥ 0, not ${n}`);
  }
  if (!RULES.some((r) => (policy[r] ?? 0) > 0)) {
    throw new Error(
      'the retention policy keeps nothing: give at least one of keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly',
    );
  }
}

/** Calendar fields of `time` in `timeZone` (IANA name, default UTC). */
function calendar(time: Date, timeZone: string) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    hourCycle: 'h23',
  }).formatToParts(time);
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  return { year: get('year'), month: get('month'), day: get('day'), hour: get('hour') };
}

function isoWeek(year: number, month: number, day: number): string {
  const d = new Date(Date.UTC(year, month - 1, day));
  const weekday = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - weekday);
  const weekYear = d.getUTCFullYear();
  const week = Math.ceil(((d.getTime() - Date.UTC(weekYear, 0, 1)) / 86_400_000 + 1) / 7);
  return `${weekYear}-W${week}`;
}

function bucketOf(rule: (typeof RULES)[number], time: Date, timeZone: string, seq: number): string {
  const c = calendar(time, timeZone);
  switch (rule) {
    case 'last':
      return String(seq);
    case 'hourly':
      return `${c.year}-${c.month}-${c.day}T${c.hour}`;
    case 'daily':
      return `${c.year}-${c.month}-${c.day}`;
    case 'weekly':
      return isoWeek(c.year, c.month, c.day);
    case 'monthly':
      return `${c.year}-${c.month}`;
    case 'yearly':
      return String(c.year);
  }
}

/** Decides, for one group of items, which to keep. Items may come in any order. */
export function applyRetention<T>(
  items: T[],
  timeOf: (item: T) => Date,
  policy: RetentionPolicy,
  timeZone = 'UTC',
): RetentionDecision<T>[] {
  validatePolicy(policy);
  const newestFirst = [...items].sort((a, b) => timeOf(b).getTime() - timeOf(a).getTime());
  const decisions = newestFirst.map((item) => ({ item, keep: false, reasons: [] as string[] }));
  for (const rule of RULES) {
    let budget = policy[rule] ?? 0;
    let lastBucket: string | undefined;
    decisions.forEach((d, seq) => {
      if (budget === 0) return;
      const bucket = bucketOf(rule, timeOf(d.item), timeZone, seq);
      if (bucket === lastBucket) return;
      lastBucket = bucket;
      d.keep = true;
      d.reasons.push(rule);
      budget--;
    });
  }
  return decisions;
}
