import { useCallback, useEffect, useRef, useState } from 'react';

/**
 * Data loaded now and every `ms` after. React keeps each keyed row's element between refreshes
 * (only changed text and attributes are patched), so the element under the pointer is never
 * replaced and a click landing during a refresh is not lost.
 */
export function usePoll<T>(
  load: () => Promise<T>,
  ms: number,
  deps: unknown[] = [],
): { data?: T; error?: string; reload: () => void; ticks: number } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [ticks, setTicks] = useState(0);
  const loader = useRef(load);
  loader.current = load;
  const reload = useCallback(() => {
    loader
      .current()
      .then(
        (d) => {
          setData(d);
          setError(undefined);
        },
        (e: Error) => setError(e.message),
      )
      .finally(() => setTicks((t) => t + 1));
  }, []);
  useEffect(() => {
    reload();
    if (!ms) return undefined;
    const timer = setInterval(reload, ms);
    return () => clearInterval(timer);
    // biome-ignore lint/correctness/useExhaustiveDependencies: the caller's deps say when to poll anew; reload is stable
  }, deps);
  return { data, error, reload, ticks };
}

const readRoute = () => window.location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);

/** The location hash as a route: `#/runs/abc` → ['runs', 'abc']. */
export function useRoute(): string[] {
  const [route, setRoute] = useState(readRoute);
  useEffect(() => {
    const onHash = () => setRoute(readRoute());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  return route;
}
