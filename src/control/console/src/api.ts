import type { FileEntry } from '../../../files/file-ops.ts';

/** The console's client of the REST API: the token lives in this tab's session storage only. */
const TOKEN_KEY = 'goldsnap-token';

export class ApiError extends Error {
  readonly status: number;
  readonly field?: string;
  constructor(status: number, message: string, field?: string) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export async function call<T>(
  method: string,
  path: string,
  body?: unknown,
  token = savedToken(),
): Promise<{ data: T; headers: Headers }> {
  const res = await fetch(path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      'x-goldsnap-client': 'console',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const parsed = text && (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text;
  if (!res.ok)
    throw new ApiError(
      res.status,
      (parsed as { error?: string })?.error ?? `HTTP ${res.status}`,
      (parsed as { field?: string })?.field,
    );
  return { data: parsed as T, headers: res.headers };
}

export async function get<T>(path: string): Promise<T> {
  return (await call<T>('GET', path)).data;
}

export interface DiskStats {
  readBytes: number;
  newStoredBytes: number;
  newChunks: number;
}
export interface RunDisk {
  diskId: string;
  diskName: string;
  region: string;
  sizeBytes: number;
  role: string;
  incremental?: boolean;
  bytesDone: number;
  bytesTotal: number;
  stats?: DiskStats;
  error?: string;
  snapshotId?: string;
}
export interface RunSummary {
  kind: 'full' | 'incremental' | null;
  trigger: 'policy' | 'user';
  durationMs: number | null;
  readBytes: number;
  storedBytes: number;
  sizeBytes: number;
}
export interface Run {
  id: string;
  vmId: string;
  vmName: string;
  policyId?: string;
  scheduledFor?: string;
  step: string;
  error?: string;
  disks: RunDisk[];
  recoveryPointId?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  summary?: RunSummary;
  /** What went less well than asked without failing the run (per-disk fall-back, full read, cross-region read). */
  warnings?: string[];
  consistency?: 'application' | 'crash' | 'per-disk';
}
export interface Vm {
  id: string;
  name: string;
  region: string;
  resourceGroup: string;
  tags: Record<string, string>;
  disks: Array<{ id: string; name: string; sizeBytes: number; role: string; golden?: { snapshotId: string } }>;
  /** Selected by an enabled policy (computed by the server). */
  protected?: boolean;
}
/** A repository check the server ran (GET /api/checks). */
export interface RepositoryCheck {
  id: string;
  scheduledFor: string | null;
  startedAt: string;
  finishedAt: string | null;
  readData: string;
  state: 'running' | 'passed' | 'failed';
  errors: string[];
  warnings: string[];
  packs: number;
  recoveryPoints: number;
  bytesRead: number;
}
export interface Policy {
  id: string;
  name: string;
  cron: string;
  timeZone: string;
  enabled: boolean;
  nextRuns: string[];
  selection: { vmIds?: string[]; tags?: Record<string, string>; resourceGroups?: string[] };
  retention: Partial<Record<'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly', number>>;
}
export interface RecoveryPointEntry {
  id: string;
  vmId: string;
  runId: string;
  time: string;
  point: {
    tags: string[];
    consistency?: 'application' | 'crash' | 'per-disk';
    disks: Array<{ name: string; sizeBytes: number }>;
  };
}
export interface Token {
  id: string;
  name: string;
  role: string;
  createdAt: string;
  /** Console sign-ins expire. */
  expiresAt?: string;
}
export interface RestoreView {
  id: string;
  state: string;
  progress: { doneBytes: number; totalBytes: number; disk?: string } | null;
  result: { disks: Array<{ id: string; name: string; region: string }>; vm?: { id: string; name: string } } | null;
  error: string | null;
}
export interface AuditEntry {
  id: string;
  at: string;
  actor: string | null;
  actorRole: string | null;
  action: string;
  target: string | null;
  status: number;
  ip: string | null;
  via: string | null;
  /** The request body, secrets removed. */
  details: Record<string, unknown>;
}
/** A file of a recovery point, as the files API lists it (the server's own type). */
export type { FileEntry };
export interface FileListing {
  disk: string;
  partition: number;
  fs: string;
  entries: FileEntry[];
}
export interface DiskFiles {
  name: string;
  sizeBytes: number;
  scheme: 'gpt' | 'mbr' | 'none';
  partitions: Array<{ number: number; start: number; sizeBytes: number; type: string; name?: string; fs: string }>;
}
