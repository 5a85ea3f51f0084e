"""The PostgreSQL schema: numbered migrations, applied at start under an advisory lock.

Rules kept here:
- One list of migrations for the whole schema; ``schema_migrations`` records each one applied,
  with the instance that applied it.
- ``migrate`` holds a transaction-scoped advisory lock while it reads the version and applies
  what is missing, all in one transaction: processes starting at once wait for each other, and
  exactly one applies each migration. A failed migration changes nothing.
- Times are UTC epoch seconds (double precision), as in the SQLite store, from the process clock;
  hosts of one cluster keep their clocks in step (NTP), as leases compare them.
"""

import asyncpg
import structlog

from common.errors import StoreError

log = structlog.get_logger("intentd.postgres")

# "intentd" as a 64-bit advisory lock key, so another application's locks do not collide.
MIGRATION_LOCK = int.from_bytes(b"intentd\x01", "big") - 2**63

MIGRATIONS = [
    """
    CREATE TABLE role_kv (
        role text NOT NULL,
        key text NOT NULL,
        value jsonb NOT NULL,
        PRIMARY KEY (role, key)
    );
    CREATE TABLE audit_log (
        seq bigserial PRIMARY KEY,
        created_at timestamptz NOT NULL,
        action text NOT NULL,
        details jsonb NOT NULL,
        user_id text,
        role text,
        intent_id text NOT NULL UNIQUE,
        parent_id text
    );
    CREATE INDEX audit_log_action ON audit_log (action, seq);
    CREATE FUNCTION intentd_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
    CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION intentd_append_only();
    CREATE TABLE timers (
        timer_id text PRIMARY KEY,
        label text NOT NULL DEFAULT '',
        due_at double precision NOT NULL,
        created_at double precision NOT NULL,
        channel_id text,
        user_id text,
        role text,
        original_request text,
        data jsonb NOT NULL DEFAULT '{}',
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'fired', 'cancelled')),
        attempts integer NOT NULL DEFAULT 0,
        fired_at double precision,
        cancelled_at double precision,
        claimed_by text,
        lease_until double precision
    );
    CREATE INDEX timers_pending ON timers (due_at) WHERE state = 'pending';
    CREATE TABLE schedule_state (
        name text PRIMARY KEY,
        spec text NOT NULL,
        next_run_at double precision NOT NULL,
        last_run_at double precision
    );
    CREATE TABLE schedule_runs (
        name text NOT NULL,
        run_at double precision NOT NULL,
        claimed_by text NOT NULL,
        lease_until double precision NOT NULL,
        done boolean NOT NULL DEFAULT false,
        PRIMARY KEY (name, run_at)
    );
    CREATE TABLE outbox (
        id bigserial PRIMARY KEY,
        key text NOT NULL UNIQUE,
        kind text NOT NULL,
        target text NOT NULL,
        lane text NOT NULL,
        text text NOT NULL,
        priority text NOT NULL,
        user_id text,
        parent_id text,
        alert boolean NOT NULL DEFAULT false,
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
        attempts integer NOT NULL DEFAULT 0,
        parts_sent integer NOT NULL DEFAULT 0,
        unsure boolean NOT NULL DEFAULT false,
        next_attempt_at double precision NOT NULL,
        created_at double precision NOT NULL,
        finished_at double precision,
        last_error text
    );
    CREATE INDEX outbox_pending ON outbox (lane, id) WHERE state = 'pending';
    CREATE TABLE outbox_lanes (
        lane text PRIMARY KEY,
        owner text NOT NULL,
        lease_until double precision NOT NULL
    );
    CREATE TABLE cluster_instances (
        instance text PRIMARY KEY,
        started_at double precision NOT NULL,
        seen_at double precision NOT NULL,
        info jsonb NOT NULL DEFAULT '{}'
    );
    """,
    """
    CREATE TABLE journal (
        seq bigserial PRIMARY KEY,
        event_id text NOT NULL UNIQUE,
        key text UNIQUE,
        event_type text NOT NULL,
        data text NOT NULL,
        publisher text NOT NULL,
        source text NOT NULL,
        channel_id text,
        user_id text,
        parent_id text,
        created_at double precision NOT NULL,
        state text NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'claimed', 'done', 'dead')),
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at double precision NOT NULL,
        owner text,
        lease_until double precision,
        finished_at double precision,
        last_error text
    );
    CREATE INDEX journal_open ON journal (seq) WHERE state IN ('claimed', 'pending');
    CREATE INDEX journal_dead ON journal (seq) WHERE state = 'dead';
    CREATE INDEX journal_done ON journal (finished_at) WHERE state = 'done';
    """,
]


async def migrate(pool: asyncpg.Pool, instance: str, shown_url: str) -> int:
    """Apply the migrations this database lacks; return how many this call applied."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL)"
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
        if current > len(MIGRATIONS):
            raise StoreError(
                f"storage.url {shown_url!r}: schema version {current} is newer than this intentd "
                f"knows ({len(MIGRATIONS)}); upgrade intentd"
            )
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            try:
                await conn.execute(script)
            except asyncpg.PostgresError as err:
                raise StoreError(
                    f"storage.url {shown_url!r}: migration {version} failed ({err})"
                ) from err
            await conn.execute(
                "INSERT INTO schema_migrations (version, applied_by) VALUES ($1, $2)",
                version,
                instance,
            )
    applied = len(MIGRATIONS) - current
    if applied:
        log.info("postgres_migrated", applied=applied, version=len(MIGRATIONS), instance=instance)
    return applied
