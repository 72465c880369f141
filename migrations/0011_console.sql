-- Intent: the web console (issue 11). Its VOD list pages by keyset on the sort key and the id, so
-- each sort (nearest expiry first, newest first), alone or within one channel, has an index in
-- that order; a VOD with no expiry or no date sorts last through the same coalesce the queries
-- use. The dashboard's VODs at risk (not on YouTube, expiring soon) read a partial index of the
-- states that are not archived yet. The title search (ILIKE '%words%') reads a trigram index
-- (pg_trgm, a trusted extension shipped with PostgreSQL), so it does not scan every VOD. The
-- extension lives in a schema of its own: its 30-odd functions are executable by PUBLIC, and the
-- schema `public` holds only ours, which PUBLIC may not call (deploy/postgres/roles.sql). Index
-- scans call the operator class's functions without privilege checks, so the runtime role needs
-- nothing on that schema. search_path is set for this transaction only, so the operator class is
-- found wherever pg_trgm was installed before.
CREATE INDEX vods_console_expiry_idx ON vods ((coalesce(expires_at, 'infinity'::timestamptz)), id);
CREATE INDEX vods_console_date_idx ON vods ((coalesce(date, created_at)), id);
CREATE INDEX vods_console_channel_expiry_idx
    ON vods (channel, (coalesce(expires_at, 'infinity'::timestamptz)), id);
CREATE INDEX vods_console_channel_date_idx ON vods (channel, (coalesce(date, created_at)), id);
CREATE INDEX vods_console_at_risk_idx ON vods (expires_at, id)
    WHERE state IN ('live', 'queued', 'waiting_for_disk', 'downloading', 'downloaded',
                    'waiting_for_auth', 'uploading', 'failed_retryable');
CREATE SCHEMA IF NOT EXISTS vodarchiver_ext;
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA vodarchiver_ext;
SET LOCAL search_path = public, vodarchiver_ext;
CREATE INDEX vods_console_title_trgm_idx ON vods USING gin (title gin_trgm_ops);
