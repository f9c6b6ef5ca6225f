import { type ReactNode, useState } from 'react';
import { call } from './api.ts';
import { usePoll } from './hooks.ts';

/**
 * Search, filters and paging of one list page, the same on every page: the filters are query
 * parameters of a list route (validated by the server, which filters and pages: see
 * src/control/api/routes/paging.ts); changing one goes back to the first page.
 */
export function useListQuery<F extends Record<string, string>>(initial: F, pageSize = 20) {
  const [filters, setFilters] = useState(initial);
  const [offset, setOffset] = useState(0);
  const set = (key: keyof F) => (e: { target: { value: string } }) => {
    setFilters({ ...filters, [key]: e.target.value });
    setOffset(0);
  };
  const query = new URLSearchParams({
    limit: String(pageSize),
    offset: String(offset),
    ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)),
  });
  return { filters, set, offset, setOffset, query, pageSize };
}
/** What the list and pager need of a query (its filters' keys aside). */
export interface ListQuery {
  offset: number;
  setOffset: (offset: number) => void;
  query: URLSearchParams;
  pageSize: number;
}

/** One page of `path` for the list's query, polled every `ms`, with the total the server counted. */
export function usePagedList<T>(path: string, list: ListQuery, ms: number) {
  return usePoll(
    async () => {
      const { data: items, headers } = await call<T[]>('GET', `${path}?${list.query}`);
      return { items, total: Number(headers.get('x-total-count') ?? items.length) };
    },
    ms,
    [list.query.toString()],
  );
}

/** `1–20 of 57` between Newer and Older. */
export function Pager({
  list,
  shown,
  total,
  id,
  none,
}: {
  list: ListQuery;
  shown: number;
  total: number;
  /** id of the "x–y of n" text. */
  id: string;
  /** What to say when nothing matches. */
  none: string;
}) {
  const { offset, setOffset, pageSize } = list;
  return (
    <p className="pager">
      <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - pageSize))}>
        Newer
      </button>
      <span id={id}>{total ? `${offset + 1}–${offset + shown} of ${total}` : none}</span>
      <button type="button" disabled={offset + shown >= total} onClick={() => setOffset(offset + pageSize)}>
        Older
      </button>
    </p>
  );
}

/** The filter bar above a list. */
export function Filters({ id, children }: { id: string; children: ReactNode }) {
  return (
    <form className="filters" id={id} onSubmit={(e) => e.preventDefault()}>
      {children}
    </form>
  );
}

/** A `datetime-local` input whose value is sent as an ISO instant in the operator's zone. */
export function TimeFilter({
  label,
  name,
  value,
  onChange,
}: {
  label: string;
  name: string;
  value: string;
  onChange: (e: { target: { value: string } }) => void;
}) {
  const local = value ? toLocalInput(new Date(value)) : '';
  return (
    <label>
      {label}{' '}
      <input
        name={name}
        type="datetime-local"
        value={local}
        onChange={(e) => onChange({ target: { value: e.target.value ? new Date(e.target.value).toISOString() : '' } })}
      />
    </label>
  );
}

function toLocalInput(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
