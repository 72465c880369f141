-- Every SQL statement the daemon runs, each under a `-- name: <name>` header, with
-- %(param)s placeholders. Loaded once by vodarchiver.db.queries; store.py has one method each.

-- name: ping
SELECT 1;

-- name: vod_counts_by_state
SELECT state, count(*) AS n FROM vods GROUP BY state;

-- name: kv_get_many
SELECT key, value FROM kv WHERE key = ANY(%(keys)s);

-- name: kv_set
INSERT INTO kv (key, value, updated_at) VALUES (%(key)s, %(value)s, now())
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now();

-- name: migrations_try_lock
SELECT pg_try_advisory_lock(%(key)s);

-- name: migrations_lock_holders
-- A bigint advisory key is stored as classid (high 32 bits), objid (low 32 bits), objsubid 1.
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1
  AND ((classid::bigint << 32) | objid::bigint) = %(key)s;

-- name: migrations_unlock
SELECT pg_advisory_unlock(%(key)s);

-- name: migrations_create_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: migrations_applied
SELECT version, name, checksum FROM schema_migrations ORDER BY version;

-- name: migrations_record
INSERT INTO schema_migrations (version, name, checksum) VALUES (%(version)s, %(name)s, %(checksum)s);
