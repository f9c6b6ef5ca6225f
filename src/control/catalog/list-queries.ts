import type { RecoveryPoint } from '../../repository/recovery-point.ts';
import type { Queryable } from './database.ts';
import type { CatalogRecoveryPoint } from './run-store.ts';

/** Paging every list query takes. */
export interface Page {
  limit?: number;
  offset?: number;
}

/** Filters of the recovery point list; every one given must hold. */
export interface RecoveryPointFilter extends Page {
  /** VM id or name. */
  vm?: string;
  /** Taken at or after this instant. */
  since?: string;
  /** Taken before this instant. */
  until?: string;
  /** Text in the VM name, the point id or a disk name. */
  q?: string;
}

/** One page of recovery points, newest first, and how many match in all. */
export async function queryRecoveryPoints(
  db: Queryable,
  f: RecoveryPointFilter,
): Promise<{ points: CatalogRecoveryPoint[]; total: number }> {
  const where = `
    WHERE ($1::text IS NULL OR p.vm_id = $1 OR v.name = $1)
      AND ($2::timestamptz IS NULL OR p.time >= $2)
      AND ($3::timestamptz IS NULL OR p.time < $3)
      AND ($4::text IS NULL OR v.name ILIKE '%' || $4 || '%' OR p.id LIKE lower($4) || '%'
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(p.point->'disks') d WHERE d->>'name' ILIKE '%' || $4 || '%'))`;
  const from = 'FROM recovery_points p LEFT JOIN vms v ON v.id = p.vm_id';
  const params = [f.vm ?? null, f.since ?? null, f.until ?? null, f.q ?? null];
  const rows = await db.query<{ id: string; vm_id: string; run_id: string; time: Date | string; point: RecoveryPoint }>(
    `SELECT p.* ${from} ${where} ORDER BY p.time DESC, p.id LIMIT $5 OFFSET $6`,
    [...params, f.limit ?? 100, f.offset ?? 0],
  );
  const [count] = await db.query<{ n: number }>(`SELECT count(*)::int AS n ${from} ${where}`, params);
  return {
    points: rows.map((r) => ({
      id: r.id,
      vmId: r.vm_id,
      runId: r.run_id,
      time: new Date(r.time).toISOString(),
      point: r.point,
    })),
    total: Number(count?.n ?? 0),
  };
}

/** Filters of the restore list (restores are `restore` jobs of the queue). */
export interface RestoreFilter extends Page {
  state?: 'queued' | 'running' | 'done' | 'failed';
  since?: string;
  until?: string;
  /** Text in the request (target name, region, resource group, point id) or the error. */
  q?: string;
}

/** Ids of one page of restores, newest first, and how many match in all. */
export async function queryRestoreIds(db: Queryable, f: RestoreFilter): Promise<{ ids: number[]; total: number }> {
  const where = `
    WHERE kind = 'restore' AND ($1::text IS NULL OR state = $1)
      AND ($2::timestamptz IS NULL OR created_at >= $2)
      AND ($3::timestamptz IS NULL OR created_at < $3)
      AND ($4::text IS NULL OR payload::text ILIKE '%' || $4 || '%' OR last_error ILIKE '%' || $4 || '%')`;
  const params = [f.state ?? null, f.since ?? null, f.until ?? null, f.q ?? null];
  const rows = await db.query<{ id: string | number }>(
    `SELECT id FROM jobs ${where} ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6`,
    [...params, f.limit ?? 100, f.offset ?? 0],
  );
  const [count] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs ${where}`, params);
  return { ids: rows.map((r) => Number(r.id)), total: Number(count?.n ?? 0) };
}
