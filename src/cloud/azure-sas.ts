/**
 * SAS links to snapshot and disk data, as Azure gives them: each expires at its `se`, so a long
 * read renews its link before then, and again after a 403 AuthenticationFailed mid-read (a clock
 * ahead of ours, a grant revoked by someone else), without starting the disk over. Concurrent
 * users of one resource share one grant; the last to let go revokes it.
 */
export interface SasGrantor {
  /** beginGetAccess: a new SAS URL for the resource (and whether data requests need a bearer token). */
  grant(id: string, access: 'Read' | 'Write', kind: 'snapshots' | 'disks'): Promise<{ url: string; aad: boolean }>;
  /** endGetAccess. */
  revoke(id: string, kind: 'snapshots' | 'disks'): Promise<void>;
}

interface Shared {
  current: Promise<{ url: string; aad: boolean; expiresAt: number }>;
  users: number;
  kind: 'snapshots' | 'disks';
  access: 'Read' | 'Write';
}

/** A user's hold on a resource's SAS: use `run` for every request made with it. */
export interface SasLease {
  /** Runs `fn` with a valid SAS URL: renewed first when close to expiry, and once more after a 403. */
  run<T>(fn: (url: string, aad: boolean) => Promise<T>): Promise<T>;
  /** The current URL, renewed first when close to expiry. */
  url(): Promise<{ url: string; aad: boolean }>;
  /** Asks for a new SAS (the one `failedUrl` is refused). */
  renew(failedUrl: string): Promise<void>;
  release(): Promise<void>;
}

/** The `se` (signed expiry) of a SAS URL in epoch ms; far in the future when it has none. */
export function sasExpiry(url: string): number {
  const se = new URL(url).searchParams.get('se');
  const t = se ? Date.parse(se) : NaN;
  return Number.isFinite(t) ? t : Number.MAX_SAFE_INTEGER;
}

export function isSasRefused(err: unknown): boolean {
  const e = err as { statusCode?: number; code?: string; details?: { errorCode?: string } };
  return e.statusCode === 403 && (e.code === 'AuthenticationFailed' || e.details?.errorCode === 'AuthenticationFailed');
}

/** Azure refused a SAS because 5 snapshots of the incremental snapshot family already have one. */
export function isFamilySasLimit(err: unknown): boolean {
  const e = err as { statusCode?: number; code?: string; message?: string };
  return (
    e?.statusCode === 409 &&
    e.code === 'OperationNotAllowed' &&
    /snapshot family|active SAS/i.test(String(e.message ?? ''))
  );
}

export class SasGrants {
  private readonly shared = new Map<string, Shared>();
  private readonly grantor: SasGrantor;
  /** Renew when less than this remains (ms). */
  private readonly marginMs: number;
  /** How many SAS renewals were made (for the figures). */
  renewals = 0;

  constructor(grantor: SasGrantor, durationSeconds: number) {
    this.grantor = grantor;
    this.marginMs = Math.min(300_000, (durationSeconds * 1000) / 5);
  }

  private fresh(
    id: string,
    access: 'Read' | 'Write',
    kind: 'snapshots' | 'disks',
  ): Promise<{ url: string; aad: boolean; expiresAt: number }> {
    return this.grantor.grant(id, access, kind).then((g) => ({ ...g, expiresAt: sasExpiry(g.url) }));
  }

  async acquire(
    id: string,
    access: 'Read' | 'Write' = 'Read',
    kind: 'snapshots' | 'disks' = 'snapshots',
  ): Promise<SasLease> {
    let s = this.shared.get(id);
    if (!s) {
      const entry: Shared = { current: this.fresh(id, access, kind), users: 0, kind, access };
      this.shared.set(id, entry);
      entry.current.catch(() => {
        if (this.shared.get(id) === entry && entry.users === 0) this.shared.delete(id);
      });
      s = entry;
    }
    s.users++;
    const entry = s;
    try {
      await entry.current;
    } catch (err) {
      entry.users--;
      if (this.shared.get(id) === entry) this.shared.delete(id);
      throw err;
    }
    let released = false;
    const renewFrom = (stale: Promise<{ url: string; aad: boolean; expiresAt: number }>) => {
      // One renewal for all users of the grant: whoever finds the stale link first asks.
      if (entry.current === stale) {
        this.renewals++;
        entry.current = this.fresh(id, entry.access, entry.kind);
      }
      return entry.current;
    };
    const lease: SasLease = {
      url: async () => {
        const now = entry.current;
        const g = await now;
        if (g.expiresAt - Date.now() > this.marginMs) return g;
        return renewFrom(now);
      },
      renew: async (failedUrl) => {
        const now = entry.current;
        if ((await now).url === failedUrl) await renewFrom(now);
        else await now;
      },
      run: async (fn) => {
        for (let attempt = 0; ; attempt++) {
          const g = await lease.url();
          try {
            return await fn(g.url, g.aad);
          } catch (err) {
            if (!isSasRefused(err) || attempt >= 2) throw err;
            await lease.renew(g.url);
          }
        }
      },
      release: async () => {
        if (released) return;
        released = true;
        if (--entry.users > 0) return;
        if (this.shared.get(id) === entry) this.shared.delete(id);
        await this.grantor.revoke(id, entry.kind);
      },
    };
    return lease;
  }

  /** Forgets a resource's grant (it was revoked behind our back, e.g. to delete the resource). */
  forget(id: string): void {
    this.shared.delete(id);
  }
}
