import type { Run } from '../orchestrator/run-model.ts';
import type { Queryable } from './database.ts';

/** Filters of the run history; every one given must hold. */
export interface RunFilter {
  /** `running` (not finished), `finished`, `succeeded` or `failed`. */
  status?: 'running' | 'finished' | 'succeeded' | 'failed';
  /** VM id or name. */
  vm?: string;
  /** Policy id or name. */
  policy?: string;
  /** `full`: some disk was read in full; `incremental`: every disk was incremental. */
  kind?: 'full' | 'incremental';
  /** `policy`: started by a policy (on schedule or run now); `user`: a VM backed up by hand. */
  trigger?: 'policy' | 'user';
  /** Created at or after this instant (ISO 8601). */
  since?: string;
  /** Created before this instant. */
  until?: string;
  /** Text found in the VM name, run id or error. */
  q?: string;
  limit?: number;
  offset?: number;
}

/** What the history shows of a run beside its document: derived, never stored. */
export interface RunSummary {
  kind: 'full' | 'incremental' | null;
  trigger: 'policy' | 'user';
  durationMs: number | null;
  readBytes: number;
  storedBytes: number;
  sizeBytes: number;
}

export function summarizeRun(run: Run): RunSummary {
  const known = run.disks.filter((d) => d.incremental !== undefined);
  const end = run.finishedAt ? Date.parse(run.finishedAt) : undefined;
  const start = Date.parse(run.startedAt ?? run.createdAt);
  return {
    kind:
      known.length === 0
        ? null
        : known.length === run.disks.length && known.every((d) => d.incremental)
          ? 'incremental'
          : 'full',
    trigger: run.policyId ? 'policy' : 'user',
    durationMs: end !== undefined && Number.isFinite(start) ? Math.max(0, end - start) : null,
    readBytes: run.disks.reduce((n, d) => n + (d.stats?.readBytes ?? 0), 0),
    storedBytes: run.disks.reduce((n, d) => n + (d.stats?.newStoredBytes ?? 0), 0),
    sizeBytes: run.disks.reduce((n, d) => n + d.sizeBytes, 0),
  };
}

/** One page of the run history, newest first, and how many runs match in all. */
export async function queryRuns(db: Queryable, f: RunFilter): Promise<{ runs: Run[]; total: number }> {
  const where = `
    WHERE ($1::text IS NULL OR ($1 = 'running' AND r.finished_at IS NULL) OR ($1 = 'finished' AND r.finished_at IS NOT NULL) OR r.step = $1)
      AND ($2::text IS NULL OR r.vm_id = $2 OR r.doc->>'vmName' = $2)
      AND ($3::text IS NULL OR r.policy_id = $3 OR r.policy_id IN (SELECT id FROM policies WHERE name = $3))
      AND ($4::text IS NULL OR ($4 = 'incremental') = (
        jsonb_array_length(r.doc->'disks') > 0 AND NOT EXISTS (
          SELECT 1 FROM jsonb_array_elements(r.doc->'disks') d WHERE (d->>'incremental') IS DISTINCT FROM 'true'))
        AND EXISTS (SELECT 1 FROM jsonb_array_elements(r.doc->'disks') d WHERE d->>'incremental' IS NOT NULL))
      AND ($5::text IS NULL OR ($5 = 'policy') = (r.policy_id IS NOT NULL))
      AND ($6::timestamptz IS NULL OR r.created_at >= $6)
      AND ($7::timestamptz IS NULL OR r.created_at < $7)
      AND ($8::text IS NULL OR r.doc->>'vmName' ILIKE '%' || $8 || '%' OR r.id LIKE $8 || '%' OR r.doc->>'error' ILIKE '%' || $8 || '%')`;
  const params = [
    f.status ?? null,
    f.vm ?? null,
    f.policy ?? null,
    f.kind ?? null,
    f.trigger ?? null,
    f.since ?? null,
    f.until ?? null,
    f.q ?? null,
  ];
  const rows = await db.query<{ doc: Run }>(
    `SELECT r.doc FROM runs r ${where} ORDER BY r.created_at DESC, r.id DESC LIMIT $9 OFFSET $10`,
    [...params, f.limit ?? 100, f.offset ?? 0],
  );
  const [count] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM runs r ${where}`, params);
  return { runs: rows.map((r) => r.doc), total: Number(count?.n ?? 0) };
}
