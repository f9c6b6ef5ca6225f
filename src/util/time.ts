/** A database timestamp (Date or string) as ISO 8601 UTC. */
export function iso(d: Date | string): string {
  return new Date(d).toISOString();
}

/** As `iso`, with SQL NULL (or absent) kept as null. */
export function isoOrNull(d: Date | string | null | undefined): string | null {
  return d === undefined || d === null ? null : iso(d);
}
