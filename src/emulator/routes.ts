import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The emulator's HTTP layer as a route table: one entry per Azure operation (named as in the REST
 * API specs, e.g. `Disks_GrantAccess`), matched by method and URL pattern, instead of one function
 * that matches URL segments by position. ARM paths are case-insensitive, as on Azure.
 */
export interface RouteRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Named parts of the path (`:rg`, `:name`, …). */
  params: Record<string, string>;
}

export interface Route {
  /** The Azure operation id, e.g. `Snapshots_CreateOrUpdate`. */
  operation: string;
  method: string;
  pattern: URLPattern;
  handle(r: RouteRequest): Promise<void>;
}

export function route(
  operation: string,
  method: string,
  pathname: string,
  handle: (r: RouteRequest) => Promise<void>,
): Route {
  return { operation, method, pattern: new URLPattern({ pathname }, { ignoreCase: true }), handle };
}

export type RouteMatch =
  | { route: Route; params: Record<string, string> }
  /** The path is known but not with this method. */
  | { allowed: string[] }
  | undefined;

export function matchRoute(routes: Route[], method: string, pathname: string): RouteMatch {
  const allowed: string[] = [];
  for (const r of routes) {
    const m = r.pattern.exec({ pathname });
    if (!m) continue;
    if (r.method !== method) {
      allowed.push(r.method);
      continue;
    }
    const params: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.pathname.groups)) if (v !== undefined) params[k] = decodeURIComponent(v);
    return { route: r, params };
  }
  return allowed.length ? { allowed } : undefined;
}
