/**
 * Which records of the emulator's state code has changed since the last save, so that a save
 * compares those and not every record (comparing all of them made each save cost the size of the
 * state: quadratic over 1,000 VMs' creation and the backups that follow).
 *
 * `track(state)` answers a view of the state through which the emulator reads and writes it: a
 * write at any depth under a collection's record (`st.disks[k].tags = …`, `vm.dataDisks.push(…)`,
 * `delete st.grants[id]`) marks that record; a write to a top-level field marks the state's meta
 * (token, subscription ids, …) or, for a collection set whole, every record of it. Reads mark
 * nothing. Objects read through the view are views too (the same one each time); values written
 * through it are stored unwrapped.
 *
 * What it cannot see: an object the code built itself, put in the state, and changes later
 * through its own reference after the save that followed. The emulator does not do that (a
 * request finds its records through the state); `GOLDSNAP_EMULATOR_CHECK_STATE=1` makes every
 * save compare all records as well and fail on a change this tracking missed (the emulator tests
 * run with it).
 */
export class StateChanges {
  /** Keys changed, by collection. */
  #records = new Map<string, Set<string>>();
  #meta = false;
  /** Views by their object, per owner (collection and key; '' for the state itself). */
  #views = new WeakMap<object, { owner: string; view: object }>();
  #targets = new WeakMap<object, object>();

  /** Takes what changed since the last call (and forgets it). */
  take(): { records: Map<string, Set<string>>; meta: boolean } {
    const out = { records: this.#records, meta: this.#meta };
    this.#records = new Map();
    this.#meta = false;
    return out;
  }

  /** The object behind a view (or the value itself). */
  unwrap<T>(value: T): T {
    return (value !== null && typeof value === 'object' ? (this.#targets.get(value) ?? value) : value) as T;
  }

  /** The view of the whole state. */
  track<T extends object>(state: T): T {
    const changes = this;
    return this.#view(state, '', {
      get(t, p) {
        const v = Reflect.get(t, p);
        if (typeof p !== 'string' || v === null || typeof v !== 'object') return v;
        return isCollection(v) ? changes.#collection(p, v) : changes.#nested(v, '', () => (changes.#meta = true));
      },
      set(t, p, v) {
        const value = changes.unwrap(v);
        if (typeof p === 'string') changes.#topLevel(t, p, value);
        return Reflect.set(t, p, value);
      },
      deleteProperty(t, p) {
        if (typeof p === 'string') changes.#topLevel(t, p, undefined);
        return Reflect.deleteProperty(t, p);
      },
      defineProperty(t, p, d) {
        if (typeof p === 'string') changes.#topLevel(t, p, d.value);
        return Reflect.defineProperty(t, p, d);
      },
    });
  }

  #topLevel(t: object, p: string, value: unknown): void {
    const old = Reflect.get(t, p);
    if (!isCollection(old) && !isCollection(value)) {
      this.#meta = true;
      return;
    }
    // A collection set or removed whole: every record it had or has changed.
    for (const c of [old, value]) if (isCollection(c)) for (const key of Object.keys(c)) this.#mark(p, key);
    if (!isCollection(old) || !isCollection(value)) this.#meta = true;
  }

  #collection(c: string, target: Record<string, unknown>): object {
    const changes = this;
    return this.#view(target, c, {
      get(t, p) {
        const v = Reflect.get(t, p);
        if (typeof p !== 'string' || v === null || typeof v !== 'object') return v;
        return changes.#nested(v, `${c}\u0000${p}`, () => changes.#mark(c, p));
      },
      set(t, p, v) {
        if (typeof p === 'string') changes.#mark(c, p);
        return Reflect.set(t, p, changes.unwrap(v));
      },
      deleteProperty(t, p) {
        if (typeof p === 'string') changes.#mark(c, p);
        return Reflect.deleteProperty(t, p);
      },
      defineProperty(t, p, d) {
        if (typeof p === 'string') changes.#mark(c, p);
        return Reflect.defineProperty(t, p, d);
      },
    });
  }

  /** A view of an object inside a record (or inside the meta): any write marks `owner`. */
  #nested(target: object, owner: string, mark: () => void): object {
    const changes = this;
    return this.#view(target, owner, {
      get(t, p) {
        const v = Reflect.get(t, p);
        if (typeof p !== 'string' || v === null || typeof v !== 'object') return v;
        return changes.#nested(v, owner, mark);
      },
      set(t, p, v) {
        mark();
        return Reflect.set(t, p, changes.unwrap(v));
      },
      deleteProperty(t, p) {
        mark();
        return Reflect.deleteProperty(t, p);
      },
      defineProperty(t, p, d) {
        mark();
        return Reflect.defineProperty(t, p, d);
      },
    });
  }

  #view<T extends object>(target: T, owner: string, handler: ProxyHandler<T>): T {
    const known = this.#views.get(target);
    if (known && known.owner === owner) return known.view as T;
    const view = new Proxy(target, handler);
    this.#targets.set(view, target);
    // An object under two owners (rare) gets a view per read for the second: still correct.
    if (!known) this.#views.set(target, { owner, view });
    return view;
  }

  #mark(c: string, key: string): void {
    let keys = this.#records.get(c);
    if (!keys) this.#records.set(c, (keys = new Set()));
    keys.add(key);
  }
}

export function isCollection(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
