/** How one object store names its locations, for the parser and its errors. */
export interface LocationScheme {
  /** `s3` or `azure`: locations start with `<scheme>:`. */
  scheme: string;
  /** `S3` or `Azure`, for messages. */
  label: string;
  /** The accepted forms, for messages. */
  forms: string;
  /** The form without an endpoint, e.g. `s3://bucket/prefix`. */
  plainForm: string;
  /** Where credentials come from instead of the location, for messages. */
  credentials: string;
  /** Why a query is refused (e.g. SAS tokens), for messages. */
  noQuery: string;
}

/**
 * Splits `<scheme>://path` or `<scheme>:http(s)://host:port/path` into the endpoint (if given) and
 * the decoded path segments. Credentials, queries and fragments are refused, and never repeated in
 * the error, so that a secret pasted into a location does not end up in a log.
 */
export function splitLocation(location: string, s: LocationScheme): { endpoint?: URL; segments: string[] } {
  if (!location.startsWith(`${s.scheme}:`)) throw new Error(`not an ${s.label} location: use ${s.forms}`);
  const rest = location.slice(s.scheme.length + 1);
  if (rest.startsWith('//')) {
    if (/[?#@]/.test(rest))
      throw new Error(
        `${s.label} location must be ${s.plainForm} without credentials, query or fragment; ${s.credentials}`,
      );
    return { segments: rest.slice(2).split('/').filter(Boolean) };
  }
  if (!/^https?:\/\//i.test(rest)) throw new Error(`unknown ${s.label} location ${location}: use ${s.forms}`);
  let url: URL;
  try {
    url = new URL(rest);
  } catch {
    throw new Error(
      `${s.label} location ${location.replace(/\/\/[^/]*@/, '//…@')} has an invalid endpoint URL: use ${s.forms}`,
    );
  }
  if (url.username || url.password) {
    throw new Error(
      `${s.label} location ${s.scheme}:${url.protocol}//…@${url.host}${url.pathname} must not hold credentials: ${s.credentials}`,
    );
  }
  if (url.search || url.hash)
    throw new Error(
      `${s.label} location ${s.scheme}:${url.origin}${url.pathname} must not have a query (${s.noQuery}) or fragment`,
    );
  return { endpoint: url, segments: url.pathname.split('/').filter(Boolean).map(decodeURIComponent) };
}
