import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { EmulatorState } from './state.ts';

/**
 * The emulator hosts several subscriptions: the first (`st.subscriptionId`, the one in the
 * connection file) and any more in `st.moreSubscriptionIds`. Resources of all of them live in the
 * same tables, keyed by their full ids; the subscription of the ARM request being served (its
 * path's /subscriptions/{id}) is carried through the handler with AsyncLocalStorage, so the code
 * that builds ids from a resource group and a name needs no subscription argument.
 */
const current = new AsyncLocalStorage<string>();

export function hostedSubscriptions(st: EmulatorState): string[] {
  return [st.subscriptionId, ...(st.moreSubscriptionIds ?? [])];
}

/** The hosted subscription with this id (as the emulator spells it), or undefined. */
export function hostedSubscription(st: EmulatorState, id: string): string | undefined {
  return hostedSubscriptions(st).find((s) => s.toLowerCase() === id.toLowerCase());
}

/** Adds subscriptions until the emulator hosts `count`; true when the state changed. */
export function ensureSubscriptionCount(st: EmulatorState, count: number): boolean {
  let changed = false;
  while (hostedSubscriptions(st).length < count) {
    st.moreSubscriptionIds = [...(st.moreSubscriptionIds ?? []), randomUUID()];
    changed = true;
  }
  return changed;
}

/** Runs `fn` as a request to `subscriptionId`. */
export function inSubscription<T>(subscriptionId: string, fn: () => T): T {
  return current.run(subscriptionId, fn);
}

/** The subscription of the request being served (the first one outside a request). */
export function currentSubscription(st: EmulatorState): string {
  return current.getStore() ?? st.subscriptionId;
}

/** Does this resource id belong to the subscription of the request being served? */
export function inCurrentSubscription(st: EmulatorState, id: string): boolean {
  return id.toLowerCase().startsWith(`/subscriptions/${currentSubscription(st).toLowerCase()}/`);
}
