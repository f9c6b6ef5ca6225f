import { randomUUID } from 'node:crypto';
import { Cron } from 'croner';
import type { CloudVm } from '../../cloud/cloud.ts';
import type { RetentionPolicy } from '../../repository/retention.ts';
import { sqlState, type Queryable } from './database.ts';
import { InvalidInputError, NotFoundError } from './errors.ts';
import { iso } from '../../util/time.ts';
import { validateConsistency, type ConsistencyOption } from './policy-consistency.ts';
import { errorMessage } from '../../util/errors.ts';

export { InvalidInputError, NotFoundError } from './errors.ts';

/**
 * Which VMs a policy backs up. A VM is selected if its id is in `vmIds`, or if `tags` or
 * `resourceGroups` are given and it matches all of those given: it is in one of `resourceGroups`
 * (case-insensitive, as Azure's are) and carries every one of `tags` (tags a restored VM inherited
 * from its source excepted: see matchesSelection). `subscriptions` (Azure subscription ids) works
 * like `resourceGroups`: the VM is in one of them (its id says which).
 */
export interface PolicySelection {
  vmIds?: string[];
  tags?: Record<string, string>;
  resourceGroups?: string[];
  subscriptions?: string[];
}

/** An Azure subscription id is a GUID. */
const SUBSCRIPTION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The subscription of a VM (its resource id's /subscriptions/{id}/ part). */
function subscriptionOfVm(vmId: string): string | undefined {
  return /^\/subscriptions\/([^/]+)\//i.exec(vmId)?.[1];
}

export interface Policy {
  id: string;
  name: string;
  /** Cron expression (5 fields, or 6 with seconds), read in `timeZone`. */
  cron: string;
  /** IANA time zone, e.g. Europe/Paris. */
  timeZone: string;
  selection: PolicySelection;
  retention: RetentionPolicy;
  /** Crash-consistent (default) or application-consistent, with guest scripts. */
  consistency: ConsistencyOption;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface PolicyInput {
  name: string;
  cron: string;
  /** Default UTC. */
  timeZone?: string;
  selection: PolicySelection;
  retention: RetentionPolicy;
  /** Default crash-consistent. */
  consistency?: ConsistencyOption;
  /** Default true. */
  enabled?: boolean;
}

export type PolicyPatch = Partial<PolicyInput>;

const RETENTION_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

export function validateTimeZone(timeZone: unknown, field = 'timeZone'): string {
  if (typeof timeZone !== 'string' || !timeZone)
    throw new InvalidInputError(field, 'must be an IANA time zone name such as Europe/Paris or UTC');
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return timeZone;
  } catch {
    throw new InvalidInputError(
      field,
      `unknown time zone ${JSON.stringify(timeZone)} (expected an IANA name such as Europe/Paris or UTC)`,
    );
  }
}

export function validateCron(cron: unknown, timeZone = 'UTC', field = 'cron'): string {
  if (typeof cron !== 'string' || !cron.trim())
    throw new InvalidInputError(field, 'must be a cron expression such as "0 2 * * *"');
  let next: Date | null;
  try {
    next = new Cron(cron, { timezone: timeZone, paused: true }).nextRun();
  } catch (err) {
    throw new InvalidInputError(field, `invalid cron expression ${JSON.stringify(cron)}: ${errorMessage(err)}`);
  }
  if (!next) throw new InvalidInputError(field, `cron expression ${JSON.stringify(cron)} never fires`);
  return cron.trim();
}

export function validateSelection(selection: unknown, field = 'selection'): PolicySelection {
  if (!selection || typeof selection !== 'object' || Array.isArray(selection)) {
    throw new InvalidInputError(field, 'must be an object with vmIds, tags, resourceGroups and/or subscriptions');
  }
  const s = selection as Record<string, unknown>;
  for (const key of Object.keys(s)) {
    if (!['vmIds', 'tags', 'resourceGroups', 'subscriptions'].includes(key))
      throw new InvalidInputError(
        `${field}.${key}`,
        'unknown field (expected vmIds, tags, resourceGroups or subscriptions)',
      );
  }
  const out: PolicySelection = {};
  for (const key of ['vmIds', 'resourceGroups', 'subscriptions'] as const) {
    const v = s[key];
    if (v === undefined) continue;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.length > 0))
      throw new InvalidInputError(`${field}.${key}`, 'must be a list of non-empty strings');
    if (key === 'subscriptions') {
      const bad = (v as string[]).find((x) => !SUBSCRIPTION_ID.test(x));
      if (bad !== undefined)
        throw new InvalidInputError(
          `${field}.subscriptions`,
          `${JSON.stringify(bad)} is not a subscription id (a GUID such as 00000000-0000-0000-0000-000000000000)`,
        );
    }
    if (v.length) out[key] = [...new Set(v as string[])];
  }
  if (s.tags !== undefined) {
    const t = s.tags;
    if (
      !t ||
      typeof t !== 'object' ||
      Array.isArray(t) ||
      !Object.entries(t).every(([k, v]) => k.length > 0 && typeof v === 'string')
    ) {
      throw new InvalidInputError(`${field}.tags`, 'must be an object of tag names to string values');
    }
    if (Object.keys(t).length) out.tags = { ...(t as Record<string, string>) };
  }
  if (!out.vmIds && !out.tags && !out.resourceGroups && !out.subscriptions) {
    throw new InvalidInputError(
      field,
      'selects nothing: give at least one of vmIds, tags, resourceGroups, subscriptions',
    );
  }
  return out;
}

export function validateRetention(retention: unknown, field = 'retention'): RetentionPolicy {
  if (!retention || typeof retention !== 'object' || Array.isArray(retention)) {
    throw new InvalidInputError(field, `must be an object with some of ${RETENTION_RULES.join(', ')}`);
  }
  const r = retention as Record<string, unknown>;
  const out: RetentionPolicy = {};
  for (const key of Object.keys(r)) {
    if (!(RETENTION_RULES as readonly string[]).includes(key))
      throw new InvalidInputError(`${field}.${key}`, `unknown rule (expected ${RETENTION_RULES.join(', ')})`);
    const n = r[key];
    if (n === undefined) continue;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)
      throw new InvalidInputError(`${field}.${key}`, `must be a whole number ≥ 0, not ${JSON.stringify(n)}`);
    out[key as (typeof RETENTION_RULES)[number]] = n;
  }
  if (!RETENTION_RULES.some((k) => (out[k] ?? 0) > 0)) {
    throw new InvalidInputError(
      field,
      `keeps nothing: give at least one of ${RETENTION_RULES.join(', ')} greater than 0`,
    );
  }
  return out;
}

/** Checks a whole policy input; returns it normalized (defaults filled). */
export function validatePolicyInput(input: unknown): Required<PolicyInput> {
  if (!input || typeof input !== 'object') throw new InvalidInputError('policy', 'must be an object');
  const p = input as Record<string, unknown>;
  if (typeof p.name !== 'string' || !p.name.trim()) throw new InvalidInputError('name', 'must be a non-empty string');
  if (p.name.length > 200) throw new InvalidInputError('name', 'must be at most 200 characters');
  if (p.enabled !== undefined && typeof p.enabled !== 'boolean')
    throw new InvalidInputError('enabled', 'must be true or false');
  const timeZone = validateTimeZone(p.timeZone ?? 'UTC');
  return {
    name: p.name.trim(),
    timeZone,
    cron: validateCron(p.cron, timeZone),
    selection: validateSelection(p.selection),
    retention: validateRetention(p.retention),
    consistency: validateConsistency(p.consistency),
    enabled: p.enabled ?? true,
  };
}

/** Is the VM protected: does an enabled policy of `policies` select it? */
export function isProtected(vm: Pick<CloudVm, 'id' | 'resourceGroup' | 'tags'>, policies: Policy[]): boolean {
  return policies.some((p) => p.enabled && matchesSelection(p.selection, vm));
}

/** Does the policy's selection pick this VM? */
export function matchesSelection(
  selection: PolicySelection,
  vm: Pick<CloudVm, 'id' | 'resourceGroup' | 'tags'>,
): boolean {
  if (selection.vmIds?.some((id) => id.toLowerCase() === vm.id.toLowerCase())) return true;
  if (!selection.tags && !selection.resourceGroups && !selection.subscriptions) return false;
  // A VM Goldsnap restored carries its source's tags: those do not make a policy back it up (its
  // resource group or its id may). Removing its goldsnapRestore tag lets tag selection take it.
  if (selection.tags && vm.tags.goldsnapRestore) return false;
  if (
    selection.resourceGroups &&
    !selection.resourceGroups.some((rg) => rg.toLowerCase() === vm.resourceGroup.toLowerCase())
  )
    return false;
  if (
    selection.subscriptions &&
    !selection.subscriptions.some((sub) => sub.toLowerCase() === subscriptionOfVm(vm.id)?.toLowerCase())
  )
    return false;
  if (selection.tags && !Object.entries(selection.tags).every(([k, v]) => vm.tags[k] === v)) return false;
  return true;
}

export interface PolicyRow {
  id: string;
  name: string;
  cron: string;
  time_zone: string;
  selection: PolicySelection;
  retention: RetentionPolicy;
  consistency: ConsistencyOption | null;
  enabled: boolean;
  created_at: Date | string;
  updated_at: Date | string;
}

export function policyFromRow(r: PolicyRow): Policy {
  return {
    id: r.id,
    name: r.name,
    cron: r.cron,
    timeZone: r.time_zone,
    selection: r.selection,
    retention: r.retention,
    consistency: r.consistency ?? { mode: 'crash' },
    enabled: r.enabled,
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
}

/** Backup policies in the catalog. Every write is validated first; bad input throws InvalidInputError. */
export class PolicyStore {
  readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  async create(input: PolicyInput): Promise<Policy> {
    const p = validatePolicyInput(input);
    try {
      const [row] = await this.db.query<PolicyRow>(
        `INSERT INTO policies (id, name, cron, time_zone, selection, retention, enabled, consistency)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
        [
          randomUUID(),
          p.name,
          p.cron,
          p.timeZone,
          JSON.stringify(p.selection),
          JSON.stringify(p.retention),
          p.enabled,
          JSON.stringify(p.consistency),
        ],
      );
      return policyFromRow(row!);
    } catch (err) {
      throw this.#translate(err, p.name);
    }
  }

  async get(id: string): Promise<Policy | undefined> {
    const [row] = await this.db.query<PolicyRow>('SELECT * FROM policies WHERE id = $1', [id]);
    return row && policyFromRow(row);
  }

  async getByName(name: string): Promise<Policy | undefined> {
    const [row] = await this.db.query<PolicyRow>('SELECT * FROM policies WHERE name = $1', [name]);
    return row && policyFromRow(row);
  }

  async list(opts: { enabled?: boolean } = {}): Promise<Policy[]> {
    const rows =
      opts.enabled === undefined
        ? await this.db.query<PolicyRow>('SELECT * FROM policies ORDER BY name')
        : await this.db.query<PolicyRow>('SELECT * FROM policies WHERE enabled = $1 ORDER BY name', [opts.enabled]);
    return rows.map(policyFromRow);
  }

  /** Changes the given fields; the result is validated as a whole. Throws NotFoundError. */
  async update(id: string, patch: PolicyPatch): Promise<Policy> {
    const current = await this.get(id);
    if (!current) throw new NotFoundError('policy', id);
    const defined = Object.fromEntries(Object.entries(patch ?? {}).filter(([, v]) => v !== undefined));
    const p = validatePolicyInput({
      name: current.name,
      cron: current.cron,
      timeZone: current.timeZone,
      selection: current.selection,
      retention: current.retention,
      consistency: current.consistency,
      enabled: current.enabled,
      ...defined,
    });
    try {
      const [row] = await this.db.query<PolicyRow>(
        `UPDATE policies SET name = $2, cron = $3, time_zone = $4, selection = $5, retention = $6, enabled = $7, consistency = $8, updated_at = now()
         WHERE id = $1 RETURNING *`,
        [
          id,
          p.name,
          p.cron,
          p.timeZone,
          JSON.stringify(p.selection),
          JSON.stringify(p.retention),
          p.enabled,
          JSON.stringify(p.consistency),
        ],
      );
      if (!row) throw new NotFoundError('policy', id);
      return policyFromRow(row);
    } catch (err) {
      throw this.#translate(err, p.name);
    }
  }

  /** Deletes the policy (its runs stay, as history). Returns false if it did not exist. */
  async delete(id: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM policies WHERE id = $1 RETURNING id', [id])).length > 0;
  }

  #translate(err: unknown, name: string): unknown {
    if (sqlState(err) === '23505')
      return new InvalidInputError('name', `a policy named ${JSON.stringify(name)} already exists`);
    return err;
  }
}
