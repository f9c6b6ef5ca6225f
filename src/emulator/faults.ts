/**
 * The emulator's bad days: a seeded fault profile (`--faults` on `goldsnap emulator` and
 * `goldsnap server`, `faults` in startEmulator). Each fault is one Azure documents
 * (compute-throttling-limits.md, the storage error codes): ARM throttling with Retry-After,
 * data-plane 503 ServerBusy and 500 OperationTimedOut, connections dropped mid-read, and
 * snapshot creation that takes seconds. Rates are per request, drawn from one seeded generator:
 * the same seed gives the same sequence of draws (requests that run concurrently may still
 * arrive in another order).
 */
export interface FaultProfile {
  seed: number;
  /** Share of ARM requests answered 429 TooManyRequests with Retry-After. */
  throttle: number;
  /** Retry-After of those answers, in seconds. */
  retryAfterSeconds: number;
  /** Share of data-plane requests answered 503 ServerBusy. */
  busy: number;
  /** Share of data-plane requests answered 500 OperationTimedOut. */
  timeout: number;
  /** Share of blob reads whose connection is dropped after part of the body. */
  drop: number;
  /** How long a snapshot takes to be created (ms); undefined keeps the emulator's timing. */
  snapshotMs?: number;
  /** How long a beginGetAccess takes (ms). */
  accessMs?: number;
}

export type FaultKind = 'throttle' | 'busy' | 'timeout' | 'drop';

/** What `--faults default` means: a bad but survivable day. */
export const DEFAULT_FAULTS: FaultProfile = {
  seed: 1,
  throttle: 0.03,
  retryAfterSeconds: 1,
  busy: 0.03,
  timeout: 0.02,
  drop: 0.02,
  snapshotMs: 2000,
  accessMs: 500,
};

const KEYS: Record<string, keyof FaultProfile> = {
  seed: 'seed',
  throttle: 'throttle',
  'retry-after': 'retryAfterSeconds',
  busy: 'busy',
  timeout: 'timeout',
  drop: 'drop',
  'snapshot-ms': 'snapshotMs',
  'access-ms': 'accessMs',
};

/**
 * Parses `default` or `key=value,…` (keys: seed, throttle, retry-after, busy, timeout, drop,
 * snapshot-ms, access-ms; rates in [0, 1]), on top of no faults (or of the defaults with `default,…`).
 */
export function parseFaultProfile(text: string): FaultProfile {
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const profile: FaultProfile =
    parts[0] === 'default'
      ? { ...DEFAULT_FAULTS }
      : { seed: 1, throttle: 0, retryAfterSeconds: 1, busy: 0, timeout: 0, drop: 0 };
  for (const part of parts[0] === 'default' ? parts.slice(1) : parts) {
    const [k, v] = part.split('=', 2);
    const key = KEYS[k ?? ''];
    const n = Number(v);
    if (!key || v === undefined || !Number.isFinite(n) || n < 0) {
      throw new Error(
        `--faults: '${part}' is not key=value with a number ≥ 0; keys: ${Object.keys(KEYS).join(', ')} (or start with 'default')`,
      );
    }
    if (['throttle', 'busy', 'timeout', 'drop'].includes(key) && n > 1)
      throw new Error(`--faults: ${k} is a rate in [0, 1], not ${v}`);
    (profile as unknown as Record<string, number>)[key] = n;
  }
  return profile;
}

/** Draws faults from a seeded generator and counts what it injected and what clients retried. */
export class FaultInjector {
  readonly profile: FaultProfile;
  readonly injected: Record<FaultKind, number> = { throttle: 0, busy: 0, timeout: 0, drop: 0 };
  /** Requests that repeat a client request id already seen: the SDK pipelines' retries. */
  retries = 0;
  #state: number;
  #seen = new Set<string>();

  constructor(profile: FaultProfile) {
    this.profile = profile;
    this.#state = profile.seed >>> 0;
  }

  /** mulberry32: small, fast, good enough to spread faults; seeded for replay. */
  #next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  #roll(kind: FaultKind): boolean {
    const rate = this.profile[kind];
    if (rate <= 0 || this.#next() >= rate) return false;
    this.injected[kind]++;
    return true;
  }

  /** Notes a request's client request id; a repeat is a retry. */
  noteRequest(clientRequestId: string | undefined): void {
    if (!clientRequestId) return;
    if (this.#seen.has(clientRequestId)) this.retries++;
    else {
      if (this.#seen.size > 200_000) this.#seen.clear();
      this.#seen.add(clientRequestId);
    }
  }

  armFault(): 'throttle' | undefined {
    return this.#roll('throttle') ? 'throttle' : undefined;
  }

  blobFault(): 'busy' | 'timeout' | undefined {
    if (this.#roll('busy')) return 'busy';
    if (this.#roll('timeout')) return 'timeout';
    return undefined;
  }

  dropRead(): boolean {
    return this.#roll('drop');
  }

  figures(): { injected: Record<FaultKind, number>; retries: number } {
    return { injected: { ...this.injected }, retries: this.retries };
  }
}
