-- Named statements of retention (issue 12), loaded with queries.sql (queries.py).

-- name: retention_vods
-- What retention needs to know of the VODs whose directories it found.
SELECT twitch_vod_id, id, state, state_changed_at, uploaded_at, processed, claim_until
FROM vods WHERE twitch_vod_id = ANY(%(ids)s);

-- name: retention_vod_by_row
SELECT twitch_vod_id, id, state, state_changed_at, uploaded_at, processed, claim_until, channel
FROM vods WHERE id = %(id)s;

-- name: retention_any_vod
SELECT EXISTS (SELECT 1 FROM vods);

-- name: retention_lock
-- Hold the VOD while its files go: nothing may claim or change it meanwhile (claims skip it).
-- `leased`: a worker took it since the decision (its lease is judged by the database's clock).
SELECT state, claim_until IS NOT NULL AND claim_until > now() AS leased
FROM vods WHERE twitch_vod_id = %(id)s FOR UPDATE;

-- name: retention_files_gone
UPDATE vods SET file_path = NULL, updated_at = now() WHERE twitch_vod_id = %(id)s;

-- name: retention_vod_exists
SELECT EXISTS (SELECT 1 FROM vods WHERE twitch_vod_id = %(id)s);
