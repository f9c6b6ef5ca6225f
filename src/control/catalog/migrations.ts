import type { Database } from './database.ts';
import { errorMessage } from '../../util/errors.ts';

/**
 * The catalog schema, as an ordered list of migrations. Never edit a migration that has shipped:
 * append a new one. Each runs once, in a transaction, recorded in `schema_migrations`.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial catalog and job queue',
    sql: `
      CREATE TABLE policies (
        id          text PRIMARY KEY,
        name        text NOT NULL UNIQUE,
        cron        text NOT NULL,
        time_zone   text NOT NULL DEFAULT 'UTC',
        selection   jsonb NOT NULL,
        retention   jsonb NOT NULL,
        enabled     boolean NOT NULL DEFAULT true,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE vms (
        id              text PRIMARY KEY,
        name            text NOT NULL,
        region          text NOT NULL,
        resource_group  text NOT NULL,
        tags            jsonb NOT NULL DEFAULT '{}',
        disks           jsonb NOT NULL DEFAULT '[]',
        seen_at         timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE runs (
        id             text PRIMARY KEY,
        vm_id          text NOT NULL,
        policy_id      text,
        scheduled_for  timestamptz,
        step           text NOT NULL,
        doc            jsonb NOT NULL,
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now(),
        finished_at    timestamptz,
        UNIQUE (policy_id, vm_id, scheduled_for)
      );
      CREATE INDEX runs_vm ON runs (vm_id, created_at DESC);
      CREATE INDEX runs_active ON runs (vm_id) WHERE finished_at IS NULL;
      CREATE INDEX runs_created ON runs (created_at DESC);

      CREATE TABLE golden (
        disk_id            text PRIMARY KEY,
        snapshot_id        text NOT NULL,
        fixed_index        text NOT NULL,
        recovery_point_id  text NOT NULL,
        updated_at         timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE recovery_points (
        id      text PRIMARY KEY,
        vm_id   text NOT NULL,
        run_id  text,
        time    timestamptz NOT NULL,
        point   jsonb NOT NULL
      );
      CREATE INDEX recovery_points_vm ON recovery_points (vm_id, time DESC);

      CREATE TABLE jobs (
        id            bigserial PRIMARY KEY,
        queue         text NOT NULL,
        kind          text NOT NULL,
        payload       jsonb NOT NULL DEFAULT '{}',
        dedupe_key    text UNIQUE,
        state         text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
        attempts      integer NOT NULL DEFAULT 0,
        max_attempts  integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
        run_after     timestamptz NOT NULL DEFAULT now(),
        locked_by     text,
        lease_until   timestamptz,
        progress      jsonb,
        result        jsonb,
        last_error    text,
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX jobs_claim ON jobs (queue, state, run_after);
      CREATE INDEX jobs_run ON jobs ((payload->>'runId'));

      CREATE TABLE schedule_fires (
        policy_id      text NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
        scheduled_for  timestamptz NOT NULL,
        fired_at       timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (policy_id, scheduled_for)
      );

      CREATE TABLE api_tokens (
        id          text PRIMARY KEY,
        name        text NOT NULL,
        role        text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        token_hash  text NOT NULL UNIQUE,
        created_at  timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 2,
    name: 'at most one unfinished run per VM',
    // Two requests racing (a double click, a schedule firing during a manual run) must not both
    // start a run: two runs on one disk would each promote a golden snapshot.
    sql: `CREATE UNIQUE INDEX runs_one_unfinished_per_vm ON runs (vm_id) WHERE finished_at IS NULL;`,
  },
  {
    version: 3,
    name: 'run leases',
    // The server advancing a run holds it: several servers on one catalog never advance one run twice.
    sql: `ALTER TABLE runs ADD COLUMN owner text, ADD COLUMN owner_until timestamptz;`,
  },
  {
    version: 4,
    name: 'per-region proxy credentials',
    // Each data proxy presents a credential valid for one region only, stored as its SHA-256;
    // revoked ones stay listed (who had access, until when). `issued_by` says whether an admin
    // made it for a remote proxy, or a server's launcher for a proxy it started (and revokes).
    sql: `
      CREATE TABLE proxy_credentials (
        id          text PRIMARY KEY,
        name        text NOT NULL,
        region      text NOT NULL,
        token_hash  text NOT NULL UNIQUE,
        issued_by   text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        revoked_at  timestamptz
      );
      CREATE INDEX proxy_credentials_issuer ON proxy_credentials (issued_by) WHERE revoked_at IS NULL;
    `,
  },
  {
    version: 5,
    name: 'audit log',
    // Every change made through the API (and so the CLI and console): who, what, when, from where.
    sql: `
      CREATE TABLE audit_log (
        id          bigserial PRIMARY KEY,
        at          timestamptz NOT NULL DEFAULT now(),
        actor       text,
        actor_role  text,
        token_id    text,
        action      text NOT NULL,
        target      text,
        details     jsonb NOT NULL DEFAULT '{}',
        status      integer NOT NULL,
        ip          text,
        via         text
      );
      CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);
    `,
  },
  {
    version: 6,
    name: 'alert channels, events and deliveries',
    // An event is recorded once (its key names it: run id, policy occurrence, VM); each channel
    // gets one delivery per event, retried until sent or out of attempts.
    sql: `
      CREATE TABLE alert_channels (
        id          text PRIMARY KEY,
        name        text NOT NULL UNIQUE,
        kind        text NOT NULL CHECK (kind IN ('webhook', 'email')),
        target      text NOT NULL,
        secret      text,
        events      jsonb NOT NULL DEFAULT '[]',
        enabled     boolean NOT NULL DEFAULT true,
        created_at  timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE alert_events (
        key         text PRIMARY KEY,
        kind        text NOT NULL,
        subject     text NOT NULL,
        details     jsonb NOT NULL DEFAULT '{}',
        created_at  timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX alert_events_created ON alert_events (created_at DESC);
      CREATE TABLE alert_deliveries (
        event_key   text NOT NULL REFERENCES alert_events (key) ON DELETE CASCADE,
        channel_id  text NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
        state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
        attempts    integer NOT NULL DEFAULT 0,
        next_at     timestamptz NOT NULL DEFAULT now(),
        last_error  text,
        sent_at     timestamptz,
        PRIMARY KEY (event_key, channel_id)
      );
      CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_at);
    `,
  },
  {
    version: 7,
    name: 'api tokens that expire',
    // Console sign-ins through OpenID Connect are tokens that end on their own.
    sql: `ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;`,
  },
  {
    version: 8,
    name: 'policy consistency (crash or application, guest scripts)',
    // NULL reads as crash-consistent, what every policy made before this got.
    sql: `ALTER TABLE policies ADD COLUMN consistency jsonb;`,
  },
  {
    version: 9,
    name: 'jobs notify their changes; when a job was claimed',
    // Servers LISTEN on goldsnap_jobs instead of polling (docs/control-plane.md, "Wake-ups"). A
    // trigger, so that every writer notifies, whichever process and code path: the notification
    // leaves at commit, when the change is visible. Heartbeats that change nothing stay silent.
    sql: `
      ALTER TABLE jobs ADD COLUMN claimed_at timestamptz;
      CREATE FUNCTION goldsnap_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('goldsnap_jobs', json_build_object('queue', NEW.queue, 'state', NEW.state, 'runId', NEW.payload->>'runId')::text);
        RETURN NULL;
      END $$;
      CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION goldsnap_jobs_notify();
      CREATE TRIGGER jobs_notify_update AFTER UPDATE ON jobs FOR EACH ROW
        WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.progress IS DISTINCT FROM NEW.progress)
        EXECUTE FUNCTION goldsnap_jobs_notify();
    `,
  },
  {
    version: 10,
    name: 'index of unfinished jobs',
    // Finished jobs stay 30 days (thousands per fire at scale): claims and queue depths look only
    // at the unfinished ones.
    sql: `CREATE INDEX jobs_unfinished ON jobs (queue, run_after) WHERE state IN ('queued', 'running');`,
  },
  {
    version: 11,
    name: 'console sign-ins under way',
    // An OpenID Connect login between the redirect to the provider and its answer: kept here, not
    // in one process, so the callback may reach a restarted server or another one on this catalog.
    sql: `
      CREATE TABLE oidc_logins (
        state         text PRIMARY KEY,
        verifier      text NOT NULL,
        nonce         text NOT NULL,
        redirect_uri  text NOT NULL,
        expires_at    timestamptz NOT NULL
      );
      CREATE INDEX oidc_logins_expires ON oidc_logins (expires_at);
    `,
  },
  {
    version: 12,
    name: 'scheduled repository checks',
    // One row per check the server ran (metadata, or with a read-data sample), with what it found.
    // A scheduled occurrence is claimed once by inserting its row: one server of several checks it.
    sql: `
      CREATE TABLE repository_checks (
        id               bigserial PRIMARY KEY,
        scheduled_for    timestamptz UNIQUE,
        started_at       timestamptz NOT NULL DEFAULT now(),
        finished_at      timestamptz,
        read_data        text NOT NULL DEFAULT 'none',
        state            text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'passed', 'failed')),
        errors           jsonb NOT NULL DEFAULT '[]',
        warnings         jsonb NOT NULL DEFAULT '[]',
        advice           jsonb NOT NULL DEFAULT '[]',
        packs            integer NOT NULL DEFAULT 0,
        chunks           integer NOT NULL DEFAULT 0,
        recovery_points  integer NOT NULL DEFAULT 0,
        bytes_read       bigint NOT NULL DEFAULT 0,
        server           text
      );
      CREATE INDEX repository_checks_started ON repository_checks (started_at DESC, id DESC);
    `,
  },
];

/** Arbitrary constant: the advisory lock that serializes migrations across server processes. */
const MIGRATION_LOCK = 0x601d5a9;

/**
 * Applies the pending migrations in one transaction and returns their versions. Two servers
 * starting at once serialize on an advisory lock: the second finds everything applied.
 */
export async function migrate(db: Database, list: readonly Migration[] = migrations): Promise<number[]> {
  for (let i = 1; i < list.length; i++) {
    if (list[i]!.version <= list[i - 1]!.version) throw new Error('migrations must be in increasing version order');
  }
  return db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set(
      (await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => Number(r.version)),
    );
    const applied: number[] = [];
    for (const m of list) {
      if (done.has(m.version)) continue;
      try {
        await tx.exec(m.sql);
      } catch (err) {
        throw new Error(`migration ${m.version} (${m.name}) failed: ${errorMessage(err)}`);
      }
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    return applied;
  });
}
