-- Every SQL statement the daemon runs, each under a `-- name: <name>` header, with
-- %(param)s placeholders. Loaded once by vodarchiver.db.queries; store.py has one method each.

-- name: ping
SELECT 1;

-- name: vod_counts_by_state
-- Kept by triggers on vods (migration 0012): a few dozen rows, never a scan of the VODs.
SELECT vod_state AS state, total AS n FROM vod_state_counts();

-- name: kv_get_many
SELECT key, value FROM kv WHERE key = ANY(%(keys)s);

-- name: kv_set
INSERT INTO kv (key, value, updated_at) VALUES (%(key)s, %(value)s, now())
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now();

-- name: migrations_try_lock
SELECT pg_try_advisory_lock(%(key)s);

-- name: migrations_lock_holders
-- A bigint advisory key is stored as classid (high 32 bits), objid (low 32 bits), objsubid 1.
-- Advisory keys are per database: a holder of the same key in another database is not ours.
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((classid::bigint << 32) | objid::bigint) = %(key)s;

-- name: migrations_unlock
SELECT pg_advisory_unlock(%(key)s);

-- name: migrations_table_exists
SELECT to_regclass('schema_migrations') IS NOT NULL;

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

-- name: role_exists
SELECT 1 FROM pg_roles WHERE rolname = %(role)s;

-- name: role_create
-- The embedded server's runtime login ({role}, {password} are quoted by psycopg.sql).
CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {password};

-- name: role_set_password
ALTER ROLE {role} PASSWORD {password};

-- name: role_grant_runtime
-- Rows only: no CREATE on the schema, no ownership. TEMPORARY: the chat writer's staging table.
GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role};
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role};

-- name: backup_server_info
-- `vodarchiver backup`/`restore`: the server's version, and whether the database has tables.
SELECT current_setting('server_version_num')::int,
       current_setting('server_version'),
       (SELECT count(*) FROM pg_tables WHERE schemaname = 'public');

-- name: channel_upsert
INSERT INTO channels (login, user_id, display_name, broadcaster_type)
VALUES (%(login)s, %(user_id)s, %(display_name)s, %(broadcaster_type)s)
ON CONFLICT (login) DO UPDATE SET
    user_id = EXCLUDED.user_id,
    display_name = EXCLUDED.display_name,
    broadcaster_type = EXCLUDED.broadcaster_type,
    updated_at = now();

-- name: channels_known
SELECT login, user_id, display_name, broadcaster_type FROM channels
WHERE login = ANY(%(logins)s) AND user_id IS NOT NULL;

-- name: channel_claim
-- Take the channel for one pass unless another replica holds it, or polled it too recently.
UPDATE channels SET poll_lease_owner = %(owner)s,
                    poll_lease_until = now() + make_interval(secs => %(lease_s)s)
WHERE login = %(login)s
  AND (poll_lease_until IS NULL OR poll_lease_until < now())
  AND (last_polled_at IS NULL OR last_polled_at <= now() - make_interval(secs => %(min_gap_s)s))
RETURNING watermark_at, full_read_at, verified_at;

-- name: channel_renew
-- Extend our lease while a pass goes on; no row means another replica took the channel over.
UPDATE channels SET poll_lease_until = now() + make_interval(secs => %(lease_s)s)
WHERE login = %(login)s AND poll_lease_owner = %(owner)s
RETURNING login;

-- name: channel_release
-- End a pass. The watermark only moves forward; a replica that lost its lease changes nothing.
UPDATE channels SET
    poll_lease_owner = NULL,
    poll_lease_until = NULL,
    last_polled_at = now(),
    watermark_at = GREATEST(watermark_at, %(watermark_at)s::timestamptz),
    full_read_at = CASE WHEN %(full_read)s THEN now() ELSE full_read_at END,
    last_success_at = CASE WHEN %(error)s::text IS NULL THEN now() ELSE last_success_at END,
    verified_at = CASE WHEN %(verified)s THEN now() ELSE verified_at END,
    last_error = %(error)s::text,
    updated_at = now()
WHERE login = %(login)s AND poll_lease_owner = %(owner)s;

-- name: vods_retention_update
-- A channel's retention window changed (its broadcaster type, or TWITCH_RETENTION_DAYS).
UPDATE vods SET retention_days = %(days)s, expires_at = date + make_interval(days => %(days)s),
                updated_at = now()
WHERE channel = %(channel)s AND date IS NOT NULL AND retention_days IS DISTINCT FROM %(days)s;

-- name: vods_durations
SELECT twitch_vod_id, duration_s FROM vods WHERE twitch_vod_id = ANY(%(ids)s);

-- name: vods_upsert
-- transition: stream_ended, stream_resumed, reappeared
-- A page of VODs in one statement (arrays, one element per VOD). `live` is true, false, or null
-- (unknown: /streams could not be read this pass). A new VOD is queued only when its stream is
-- known to have ended; an existing one moves between live and queued only on a definite answer,
-- and a VOD that reappears after being marked gone is revived.
WITH input AS (
    SELECT * FROM unnest(
        %(id)s::text[], %(channel)s::text[], %(stream_id)s::text[], %(title)s::text[],
        %(description)s::text[], %(created_at)s::timestamptz[], %(published_at)s::timestamptz[],
        %(duration_s)s::int[], %(url)s::text[], %(thumbnail_url)s::text[], %(viewable)s::text[],
        %(muted_segments)s::jsonb[], %(retention_days)s::int[], %(expires_at)s::timestamptz[],
        %(live)s::boolean[]
    ) AS i(id, channel, stream_id, title, description, created_at, published_at, duration_s,
           url, thumbnail_url, viewable, muted_segments, retention_days, expires_at, live)
)
INSERT INTO vods AS v (
    twitch_vod_id, channel, stream_id, title, description, date, published_at, duration_s, url,
    thumbnail_url, viewable, muted_segments, retention_days, expires_at, state, last_seen_at)
SELECT id, channel, stream_id, title, description, created_at, published_at, duration_s, url,
       thumbnail_url, viewable, muted_segments, retention_days, expires_at,
       CASE WHEN live IS FALSE THEN 'queued' ELSE 'live' END, now()
FROM input
ON CONFLICT (twitch_vod_id) DO UPDATE SET
    stream_id = EXCLUDED.stream_id,
    title = EXCLUDED.title,
    description = EXCLUDED.description,
    date = EXCLUDED.date,
    published_at = EXCLUDED.published_at,
    duration_s = EXCLUDED.duration_s,
    url = EXCLUDED.url,
    thumbnail_url = EXCLUDED.thumbnail_url,
    viewable = EXCLUDED.viewable,
    muted_segments = EXCLUDED.muted_segments,
    retention_days = EXCLUDED.retention_days,
    expires_at = EXCLUDED.expires_at,
    last_seen_at = now(),
    missing_since = NULL,
    gone_at = CASE WHEN v.state = 'gone' THEN NULL ELSE v.gone_at END,
    download_state = CASE WHEN v.state = 'gone' THEN 'pending' ELSE v.download_state END,
    state = CASE
        WHEN v.state = 'gone' THEN EXCLUDED.state
        WHEN v.state = 'live'
             AND (SELECT i.live FROM input i WHERE i.id = EXCLUDED.twitch_vod_id) IS FALSE
            THEN 'queued'
        WHEN v.state = 'queued'
             AND (SELECT i.live FROM input i WHERE i.id = EXCLUDED.twitch_vod_id) IS TRUE
            THEN 'live'
        ELSE v.state END,
    updated_at = now()
RETURNING v.twitch_vod_id, (xmax = 0) AS inserted, v.state;

-- name: vods_unarchived
-- VODs of a channel that exist only on Twitch so far (no local copy): the ones that can be lost.
SELECT twitch_vod_id, date FROM vods
WHERE channel = %(channel)s
  AND state IN ('live', 'queued', 'waiting_for_disk', 'failed_retryable');

-- name: vods_mark_missing
-- Helix confirmed these are missing once; they become gone only if still missing later.
UPDATE vods SET missing_since = COALESCE(missing_since, %(now)s), updated_at = now()
WHERE twitch_vod_id = ANY(%(ids)s)
  AND state IN ('live', 'queued', 'waiting_for_disk', 'failed_retryable');

-- name: vods_mark_gone
-- transition: confirmed_gone
UPDATE vods SET state = 'gone', download_state = 'gone', gone_at = %(now)s, updated_at = now()
WHERE twitch_vod_id = ANY(%(ids)s)
  AND missing_since <= %(missing_before)s
  AND state IN ('live', 'queued', 'waiting_for_disk', 'failed_retryable')
RETURNING twitch_vod_id;

-- name: vods_gone_unexpired
-- Gone VODs Twitch might still have (a glitch, a VOD made private then public again).
SELECT twitch_vod_id FROM vods
WHERE channel = %(channel)s AND state = 'gone' AND (expires_at IS NULL OR expires_at > %(now)s);

-- name: vods_list
-- The queue order (manual priority first, then the nearest expiry) as one ascending key,
-- (-priority, expiry or infinity, id), so the page after a cursor is one range of an index
-- (migration 0012 has one per filter combination). Run unprepared (store.py): each combination
-- of filters and cursor is planned with its real values, never as a generic plan.
SELECT twitch_vod_id, channel, stream_id, title, state, download_state, priority, date,
       published_at, duration_s, expires_at, youtube_url, processing_error, url, gone_at,
       id AS row_id
FROM vods
WHERE (%(channel)s::text IS NULL OR channel = %(channel)s)
  AND (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(after_id)s::bigint IS NULL
       OR (-(priority::bigint), coalesce(expires_at, 'infinity'::timestamptz), id)
          > (-(%(after_priority)s::bigint), %(after_expiry)s::timestamptz, %(after_id)s::bigint))
ORDER BY -(priority::bigint), coalesce(expires_at, 'infinity'::timestamptz), id
LIMIT %(limit)s OFFSET %(offset)s;

-- name: vod_get
SELECT twitch_vod_id, channel, stream_id, title, description, state, download_state, priority,
       date, published_at, duration_s, url, thumbnail_url, viewable, muted_segments,
       retention_days, expires_at, last_seen_at, gone_at, youtube_url, processing_error, generation,
       processed, corr, download_attempts, next_attempt_at, download_started_at,
       download_finished_at, download_progress, download_progress_at, file_path, file_size,
       upload_attempts, upload_error, upload_started_at, uploaded_at,
       created_at, updated_at
FROM vods WHERE twitch_vod_id = %(id)s;

-- name: vods_expiring_soon
-- Through vods_console_at_risk_idx (a partial index on exactly these states): costs the VODs at
-- risk, not the archive.
SELECT count(*) FROM vods
WHERE state IN ('live', 'queued', 'waiting_for_disk', 'downloading', 'downloaded',
                'waiting_for_auth', 'uploading', 'failed_retryable')
  AND expires_at < now() + make_interval(hours => %(hours)s);

-- name: vods_next_expiry
-- When Twitch is expected to delete the first VOD not archived yet (NULL: none): the first entry
-- of vods_console_at_risk_idx.
SELECT min(expires_at) FROM vods
WHERE state IN ('live', 'queued', 'waiting_for_disk', 'downloading', 'downloaded',
                'waiting_for_auth', 'uploading', 'failed_retryable');

-- name: download_progress
-- Renew the lease and store progress; no row means the VOD was canceled or taken over.
UPDATE vods SET claim_until = now() + make_interval(secs => %(lease_s)s),
                download_progress = %(progress)s, download_progress_at = now()
WHERE id = %(id)s AND claimed_by = %(owner)s AND state = 'downloading'
RETURNING id;

-- name: download_finish
-- transition: download_succeeded, download_failed, download_gave_up, download_gone, download_restricted, disk_full, download_interrupted
-- Record how an attempt ended, if this worker still owns the VOD (a cancel wins).
UPDATE vods SET
    state = %(state)s, download_state = %(download_state)s,
    download_attempts = download_attempts + %(failed)s,
    next_attempt_at = %(next_attempt_at)s,
    download_error = %(error)s, processing_error = %(error)s,
    file_path = COALESCE(%(file_path)s, file_path), file_size = COALESCE(%(file_size)s, file_size),
    download_finished_at = CASE WHEN %(state)s = 'downloaded' THEN now() ELSE download_finished_at END,
    discard_files = false,
    gone_at = CASE WHEN %(state)s = 'gone' THEN now() ELSE gone_at END,
    claimed_by = NULL, claim_until = NULL, updated_at = now()
WHERE id = %(id)s AND claimed_by = %(owner)s AND state = 'downloading'
RETURNING id;

-- name: download_release_previous
-- At start-up: claims an earlier run of this daemon (same host and DATA_DIR) left behind when it
-- was killed are released at once instead of waiting for their leases to run out.
UPDATE vods SET claim_until = now() - interval '1 second'
WHERE state = 'downloading' AND starts_with(claimed_by, %(prefix)s)
  AND NOT starts_with(claimed_by, %(owner)s)
RETURNING twitch_vod_id;

-- name: download_heartbeat
-- Renew the lease of one claim for as long as its attempt runs (remux and checks included).
UPDATE vods SET claim_until = now() + make_interval(secs => %(lease_s)s)
WHERE id = %(id)s AND claimed_by = %(owner)s AND state = 'downloading'
RETURNING id;

-- name: vod_state
SELECT state FROM vods WHERE id = %(id)s;

-- name: vods_waiting_for_disk
SELECT count(*) FROM vods WHERE state = 'waiting_for_disk';

-- name: kv_ema
-- Exponential moving average in kv (the runbook's avg_download_ms, ...).
INSERT INTO kv (key, value, updated_at) VALUES (%(key)s, %(sample)s::text, now())
ON CONFLICT (key) DO UPDATE SET
    value = (%(alpha)s * %(sample)s + (1 - %(alpha)s) * kv.value::double precision)::text,
    updated_at = now();

-- name: kv_set_many
INSERT INTO kv (key, value, updated_at)
SELECT k, v, now() FROM unnest(%(keys)s::text[], %(values)s::text[]) AS t (k, v)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now();

-- name: kv_delete
DELETE FROM kv WHERE key = ANY(%(keys)s);

-- name: advisory_xact_lock
-- Serialises read-modify-write of shared `kv` values (the breaker) across replicas.
SELECT pg_advisory_xact_lock(%(lock)s);

-- name: quota_charge
-- Spend `units` of a bucket's day only if the budget still holds them; no row: not affordable.
INSERT INTO kv (key, value, updated_at)
SELECT %(key)s, %(units)s::text, now() WHERE %(units)s <= %(budget)s
ON CONFLICT (key) DO UPDATE SET value = (kv.value::bigint + %(units)s)::text, updated_at = now()
WHERE kv.value::bigint + %(units)s <= %(budget)s
RETURNING value::bigint;

-- name: quota_exhaust
-- YouTube says the quota is spent, whatever we counted: the day's bucket is full.
INSERT INTO kv (key, value, updated_at) VALUES (%(key)s, %(budget)s::text, now())
ON CONFLICT (key) DO UPDATE SET value = GREATEST(kv.value::bigint, %(budget)s)::text,
                                updated_at = now();

-- name: token_get
SELECT sealed, scheme, generation, bootstrap_sha256, revoked_at, revoked_reason
FROM oauth_tokens WHERE provider = %(provider)s AND channel = %(channel)s;

-- name: token_put
-- A token from the operator (the consent flow, YT_REFRESH_TOKEN): a new generation, not revoked.
INSERT INTO oauth_tokens (provider, channel, sealed, scheme, generation, bootstrap_sha256, scopes,
                          updated_at)
VALUES (%(provider)s, %(channel)s, %(sealed)s, %(scheme)s, 1, %(bootstrap_sha256)s, %(scopes)s,
        now())
ON CONFLICT (provider, channel) DO UPDATE SET
    sealed = EXCLUDED.sealed, scheme = EXCLUDED.scheme,
    generation = oauth_tokens.generation + 1,
    bootstrap_sha256 = COALESCE(EXCLUDED.bootstrap_sha256, oauth_tokens.bootstrap_sha256),
    scopes = COALESCE(EXCLUDED.scopes, oauth_tokens.scopes),
    revoked_at = NULL, revoked_reason = NULL, updated_at = now()
RETURNING generation;

-- name: token_rotate
-- Google rotated the refresh token: replace it only if nobody else did first (compare and swap).
UPDATE oauth_tokens SET sealed = %(sealed)s, scheme = %(scheme)s, generation = generation + 1,
                        expires_at = %(expires_at)s, updated_at = now()
WHERE provider = %(provider)s AND channel = %(channel)s AND generation = %(generation)s
RETURNING generation;

-- name: token_save_access
-- A fresh access token for the same refresh token, shared with the other replicas.
UPDATE oauth_tokens SET sealed = %(sealed)s, scheme = %(scheme)s, expires_at = %(expires_at)s,
                        updated_at = now()
WHERE provider = %(provider)s AND channel = %(channel)s AND generation = %(generation)s
RETURNING generation;

-- name: token_revoke
UPDATE oauth_tokens SET revoked_at = now(), revoked_reason = %(reason)s, updated_at = now()
WHERE provider = %(provider)s AND channel = %(channel)s AND generation = %(generation)s;

-- name: upload_heartbeat
UPDATE vods SET claim_until = now() + make_interval(secs => %(lease_s)s)
WHERE id = %(id)s AND claimed_by = %(owner)s AND state = 'uploading'
RETURNING id;

-- name: upload_release_previous
-- At start-up: uploads an earlier, killed run of this daemon held are released at once.
UPDATE vods SET claim_until = now() - interval '1 second'
WHERE state = 'uploading' AND starts_with(claimed_by, %(prefix)s)
  AND NOT starts_with(claimed_by, %(owner)s)
RETURNING twitch_vod_id;

-- name: upload_finish
-- transition: upload_failed, upload_gave_up, upload_deferred, auth_refused
-- How an upload attempt ended short of publishing, if this worker still owns the VOD.
UPDATE vods SET
    state = %(state)s, upload_attempts = upload_attempts + %(failed)s,
    next_attempt_at = %(next_attempt_at)s,
    upload_error = %(error)s, processing_error = %(error)s,
    claimed_by = NULL, claim_until = NULL, updated_at = now()
WHERE id = %(id)s AND claimed_by = %(owner)s AND state = 'uploading'
RETURNING id;

-- name: upload_done
-- transition: upload_succeeded
-- Every part is on YouTube: the runbook's processed=1 and youtube_url.
UPDATE vods SET
    state = 'uploaded', processed = 1, youtube_url = %(youtube_url)s, uploaded_at = now(),
    upload_error = NULL, processing_error = NULL, next_attempt_at = NULL,
    claimed_by = NULL, claim_until = NULL, updated_at = now()
WHERE id = %(id)s AND claimed_by = %(owner)s AND state = 'uploading'
RETURNING extract(epoch FROM now() - created_at);

-- name: upload_parts
SELECT part, parts, file_path, file_size, fingerprint, start_s, duration_s, marker, title,
       session_uri, sessions_started, bytes_confirmed, bytes_sent, video_id, upload_status,
       status_reason, adopted, playlist_added, uploaded_at
FROM youtube_uploads WHERE vod_id = %(id)s ORDER BY part;

-- name: upload_parts_insert
-- The plan of a VOD's parts, recorded once (a second plan of the same VOD changes nothing).
INSERT INTO youtube_uploads (vod_id, part, parts, file_path, file_size, fingerprint, start_s,
                             duration_s, marker)
SELECT %(id)s, p, %(parts)s, f, s, fp, st, d, m
FROM unnest(%(part)s::int[], %(file_path)s::text[], %(file_size)s::bigint[],
            %(fingerprint)s::text[], %(start_s)s::float8[], %(duration_s)s::float8[],
            %(marker)s::text[]) AS t (p, f, s, fp, st, d, m)
ON CONFLICT (vod_id, part) DO NOTHING;

-- name: upload_session_set
-- The session URI is stored before the first byte is sent.
UPDATE youtube_uploads SET session_uri = %(session_uri)s, session_started_at = now(),
       sessions_started = sessions_started + 1, bytes_confirmed = 0, title = %(title)s,
       updated_at = now()
WHERE vod_id = %(id)s AND part = %(part)s AND video_id IS NULL;

-- name: upload_session_clear
UPDATE youtube_uploads SET session_uri = NULL, bytes_confirmed = 0, updated_at = now()
WHERE vod_id = %(id)s AND part = %(part)s AND video_id IS NULL;

-- name: upload_progress
UPDATE youtube_uploads SET bytes_confirmed = %(confirmed)s,
       bytes_sent = bytes_sent + %(sent)s, updated_at = now()
WHERE vod_id = %(id)s AND part = %(part)s;

-- name: upload_video_set
-- The part is on YouTube (uploaded by us, or found by its marker and adopted).
UPDATE youtube_uploads SET video_id = %(video_id)s, upload_status = %(upload_status)s,
       adopted = %(adopted)s, session_uri = NULL, bytes_confirmed = file_size,
       uploaded_at = now(), updated_at = now()
WHERE vod_id = %(id)s AND part = %(part)s;

-- name: upload_status_set
UPDATE youtube_uploads SET upload_status = %(upload_status)s, status_reason = %(reason)s,
       updated_at = now()
WHERE vod_id = %(id)s AND part = %(part)s;

-- name: upload_playlist_added
UPDATE youtube_uploads SET playlist_added = true, updated_at = now()
WHERE vod_id = %(id)s AND part = %(part)s;

-- name: vods_auth_wait
-- transition: auth_refused
-- Credentials are refused: every VOD waiting to be published says so.
UPDATE vods SET state = 'waiting_for_auth', updated_at = now()
WHERE state = 'downloaded' RETURNING twitch_vod_id;

-- name: vods_auth_resume
-- transition: auth_restored
UPDATE vods SET state = 'downloaded', updated_at = now()
WHERE state = 'waiting_for_auth' RETURNING twitch_vod_id;

-- name: uploads_rejected
-- Videos YouTube rejected or failed to process, newest first, for /status.
SELECT v.twitch_vod_id, u.part, u.parts, u.video_id, u.upload_status, u.status_reason
FROM youtube_uploads u JOIN vods v ON v.id = u.vod_id
WHERE u.upload_status IN ('rejected', 'failed')
ORDER BY u.updated_at DESC LIMIT 20;

-- name: vod_uploads
-- A VOD's parts as the API shows them (never the session URI: it is a capability).
SELECT u.part, u.parts, u.file_size, u.video_id, u.upload_status, u.status_reason, u.adopted,
       u.bytes_confirmed, u.bytes_sent, u.sessions_started, u.title, u.uploaded_at,
       (u.session_uri IS NOT NULL) AS session_open
FROM youtube_uploads u JOIN vods v ON v.id = u.vod_id
WHERE v.twitch_vod_id = %(id)s ORDER BY u.part;
-- name: chat_streams_lock
-- Taken by a chat write before it reads the placeholders it writes to: a reconciliation waits
-- for the write to commit, and a write that starts during one sees its result.
-- Returns what the batch's rows need from each stream: its VOD (once reconciled), its start in
-- Unix ms (the same rounding as `chat_insert`), and the reconciliation shift.
SELECT stream_id, vod_id, (extract(epoch FROM started_at) * 1000)::bigint AS started_ms,
       COALESCE(shift_ms, 0) AS shift_ms
FROM chat_streams WHERE stream_id = ANY(%(ids)s) ORDER BY stream_id FOR SHARE;

-- name: chat_quiet
-- The staging table is created once per connection; its "already exists" notice is noise.
SET LOCAL client_min_messages = warning;

-- name: chat_stage_create
-- Per-connection staging for COPY (COPY cannot skip duplicates; the INSERT below does).
CREATE TEMP TABLE IF NOT EXISTS chat_in (
    msg_id text, channel text, kind text, user_id text, username text, display_name text,
    message text, sent_ms bigint, raw_tags text, stream_id text, color text, is_action boolean,
    bits integer, reply_parent_msg_id text
) ON COMMIT DELETE ROWS;

-- name: chat_copy
COPY chat_in (msg_id, channel, kind, user_id, username, display_name, message, sent_ms, raw_tags,
              stream_id, color, is_action, bits, reply_parent_msg_id) FROM STDIN;

-- name: chat_copy_direct
-- A batch whose ids are all new goes straight into the table (binary COPY, offsets computed by
-- the writer from `chat_streams_lock`): no staging, no second pass. A duplicate id fails it, and
-- the batch goes through chat_in and `chat_insert` instead.
COPY chat_messages (msg_id, vod_id, channel, kind, user_id, username, display_name, message,
                    sent_at, offset_ms, raw_tags, stream_id, color, is_action, bits,
                    reply_parent_msg_id) FROM STDIN (FORMAT BINARY);

-- name: chat_insert
-- The staged batch into chat_messages. Twitch's id is the key, so a line replayed after a
-- reconnect is dropped. A message of a known stream gets its offset from the stream's start, and
-- goes straight to the VOD (offset shifted) once that stream is reconciled. Returns how many
-- rows each channel really gained.
WITH inserted AS (
INSERT INTO chat_messages (
    msg_id, vod_id, channel, kind, user_id, username, display_name, message, sent_at, offset_ms,
    raw_tags, stream_id, color, is_action, bits, reply_parent_msg_id)
SELECT i.msg_id, s.vod_id, i.channel, i.kind, i.user_id, i.username, i.display_name, i.message,
       to_timestamp(i.sent_ms / 1000.0),
       CASE WHEN s.stream_id IS NULL THEN NULL
            ELSE i.sent_ms - (extract(epoch FROM s.started_at) * 1000)::bigint
                 + COALESCE(s.shift_ms, 0) END,
       i.raw_tags, i.stream_id, i.color, i.is_action, i.bits, i.reply_parent_msg_id
FROM chat_in i LEFT JOIN chat_streams s ON s.stream_id = i.stream_id
ON CONFLICT (msg_id) DO NOTHING
RETURNING channel
)
SELECT channel, count(*) FROM inserted GROUP BY channel;

-- name: chat_mark_deleted
-- CLEARMSG: the message is marked, never erased.
UPDATE chat_messages SET deleted = true WHERE msg_id = ANY(%(ids)s) AND NOT deleted;

-- name: chat_stream_open
-- A live stream we record: the placeholder. Seen again after an offline flap: live once more.
INSERT INTO chat_streams (stream_id, channel, started_at)
VALUES (%(stream_id)s, %(channel)s, %(started_at)s)
ON CONFLICT (stream_id) DO UPDATE SET ended_at = NULL, updated_at = now();

-- name: chat_stream_close
UPDATE chat_streams SET ended_at = %(ended_at)s, updated_at = now()
WHERE stream_id = %(stream_id)s AND ended_at IS NULL;

-- name: chat_reconcile_candidates
-- Placeholders whose VOD is known: by stream id, or (when Helix gave the VOD no stream id) the
-- channel's VOD that started within the window of the stream.
SELECT s.stream_id, v.id AS vod_row_id, s.started_at, v.date AS vod_started_at
FROM chat_streams s
JOIN LATERAL (
    SELECT id, date FROM vods
    WHERE vods.stream_id = s.stream_id
       OR (vods.stream_id IS NULL AND vods.channel = s.channel AND vods.date IS NOT NULL
           AND abs(extract(epoch FROM vods.date - s.started_at)) <= %(window_s)s)
    ORDER BY (vods.stream_id = s.stream_id) DESC NULLS LAST,
             abs(extract(epoch FROM vods.date - s.started_at))
    LIMIT 1
) v ON true
WHERE s.reconciled_at IS NULL AND v.date IS NOT NULL;

-- name: chat_stream_take
-- Lock one placeholder for its reconciliation; no row: another replica did it already.
SELECT stream_id FROM chat_streams
WHERE stream_id = %(stream_id)s AND reconciled_at IS NULL
FOR UPDATE;

-- name: chat_stream_reconcile
UPDATE chat_streams SET vod_id = %(vod_row_id)s, shift_ms = %(shift_ms)s, reconciled_at = now(),
                        updated_at = now()
WHERE stream_id = %(stream_id)s AND reconciled_at IS NULL;

-- name: chat_messages_reconcile
UPDATE chat_messages SET vod_id = %(vod_row_id)s, offset_ms = offset_ms + %(shift_ms)s
WHERE stream_id = %(stream_id)s AND vod_id IS NULL;

-- name: chat_attach_orphans
-- Messages recorded with no known stream go to the channel's VOD that was running when they
-- were sent.
UPDATE chat_messages m
SET vod_id = v.id, offset_ms = (extract(epoch FROM m.sent_at - v.date) * 1000)::bigint
FROM vods v
WHERE m.vod_id IS NULL AND m.stream_id IS NULL AND m.channel = v.channel
  AND v.date IS NOT NULL AND v.duration_s IS NOT NULL
  AND m.sent_at >= v.date AND m.sent_at < v.date + make_interval(secs => v.duration_s);

-- name: chat_placeholders_unreconciled
-- Placeholders without their VOD yet; `overdue` once the window after the stream's end passed.
SELECT stream_id, channel, started_at, ended_at,
       (ended_at IS NOT NULL AND ended_at < now() - make_interval(secs => %(window_s)s)) AS overdue,
       (SELECT count(*) FROM chat_messages m WHERE m.stream_id = s.stream_id) AS messages
FROM chat_streams s
WHERE reconciled_at IS NULL
ORDER BY started_at;

-- name: chat_page
-- One page of a VOD's chat in order of offset, from `from_ms` (inclusive) to `to_ms` (exclusive),
-- after the (offset, id) of the previous page's last message. The VOD's row id comes from a
-- scalar subquery, not a join: joined, PostgreSQL could not use (vod_id, offset_ms) and read and
-- sorted a whole 1,000,000-message chat for every page (0.5 s a page; now a few ms).
SELECT m.msg_id, m.kind, m.user_id, m.username, m.display_name, m.message, m.sent_at,
       m.offset_ms, m.deleted, m.color, m.is_action, m.bits, m.reply_parent_msg_id, m.tags,
       m.raw_tags
FROM chat_messages m
WHERE m.vod_id = (SELECT id FROM vods WHERE twitch_vod_id = %(vod_id)s)
  AND m.offset_ms >= %(from_ms)s AND m.offset_ms < %(to_ms)s
  AND (m.offset_ms, m.msg_id) > (%(after_ms)s, %(after_id)s)
ORDER BY m.offset_ms, m.msg_id
LIMIT %(limit)s;

-- name: vod_for_action
-- The VOD an operator acts on, locked until the action is recorded.
SELECT id, twitch_vod_id, channel, state, download_state, file_path, next_attempt_at, generation,
       priority, corr
FROM vods WHERE twitch_vod_id = %(id)s FOR UPDATE;

-- name: vod_stop
-- transition: cancel, skip
-- A verified download stays `downloaded` in download_state, so a restore can publish it.
UPDATE vods SET state = %(to_state)s,
    download_state = CASE WHEN download_state = 'downloaded' THEN 'downloaded'
                          ELSE %(to_state)s END,
    claimed_by = NULL, claim_until = NULL, next_attempt_at = NULL, updated_at = now()
WHERE id = %(id)s AND state = %(from_state)s
RETURNING id;

-- name: vod_restore
-- transition: restore
UPDATE vods SET state = %(to_state)s,
    download_state = CASE WHEN %(to_state)s = 'downloaded' THEN 'downloaded' ELSE 'pending' END,
    download_attempts = 0, upload_attempts = 0, next_attempt_at = NULL,
    processing_error = NULL, download_error = NULL, upload_error = NULL,
    missing_since = NULL, gone_at = NULL, updated_at = now()
WHERE id = %(id)s AND state = %(from_state)s
RETURNING id;

-- name: vod_retry_now
-- transition: retry
-- Due now. A VOD waiting for disk is rechecked once its row is a minute old (download_claim).
UPDATE vods SET next_attempt_at = now(),
    updated_at = CASE WHEN state = 'waiting_for_disk' THEN now() - interval '61 seconds'
                      ELSE now() END
WHERE id = %(id)s AND state = %(from_state)s
RETURNING id;

-- name: vod_archive_parts
-- A reprocessed VOD's parts become its history (in the reprocess's transaction).
SELECT vods_archive_parts(%(id)s, generation, %(delete_old)s) FROM vods WHERE id = %(id)s;

-- name: vod_reprocess
-- transition: reprocess
-- Download and publish again as a new generation (after vod_archive_parts).
UPDATE vods SET state = 'queued', download_state = 'pending', generation = generation + 1,
    discard_files = true, delete_old_videos = %(delete_old)s, processed = 0, youtube_url = NULL,
    processing_error = NULL, download_error = NULL, upload_error = NULL,
    download_attempts = 0, upload_attempts = 0, next_attempt_at = NULL,
    download_progress = NULL, uploaded_at = NULL, upload_started_at = NULL,
    file_path = NULL, file_size = NULL, updated_at = now()
WHERE id = %(id)s AND state = %(from_state)s
RETURNING id, generation;

-- name: vod_priority
-- transition: priority
UPDATE vods SET priority = %(priority)s, updated_at = now()
WHERE id = %(id)s AND state = %(from_state)s
RETURNING id;

-- name: audit_insert
INSERT INTO vod_audit (vod_id, action, from_state, to_state, actor, corr, detail)
VALUES (%(vod_id)s, %(action)s, %(from_state)s, %(to_state)s, %(actor)s, %(corr)s, %(detail)s)
RETURNING id, at;

-- name: audit_page
-- Newest first, before the id of the previous page's last row.
SELECT id, at, vod_id, action, from_state, to_state, actor, corr, detail FROM vod_audit
WHERE (%(vod_id)s::text IS NULL OR vod_id = %(vod_id)s) AND id < %(before)s
ORDER BY id DESC LIMIT %(limit)s;

-- name: vod_history
-- Earlier generations' videos of a reprocessed VOD.
SELECT h.generation, h.part, h.parts, h.video_id, h.upload_status, h.uploaded_at, h.replaced_at,
       h.delete_wanted, h.deleted_at
FROM youtube_uploads_history h JOIN vods v ON v.id = h.vod_id
WHERE v.twitch_vod_id = %(id)s ORDER BY h.generation, h.part;

-- name: history_to_delete
-- Old videos the operator asked to delete, once every new part is confirmed.
SELECT generation, part, video_id FROM youtube_uploads_history
WHERE vod_id = %(id)s AND delete_wanted AND deleted_at IS NULL AND video_id IS NOT NULL
ORDER BY generation, part;

-- name: history_deleted
UPDATE youtube_uploads_history SET deleted_at = now()
WHERE vod_id = %(id)s AND generation = %(generation)s AND part = %(part)s;

-- name: monitor_claims
-- Every VOD a worker holds, with its lease.
SELECT twitch_vod_id, state, claimed_by, claim_until, claim_until < now() AS expired
FROM vods WHERE claimed_by IS NOT NULL ORDER BY claim_until;

-- name: monitor_channel_leases
SELECT login, poll_lease_owner, poll_lease_until, last_polled_at, last_success_at, last_error
FROM channels ORDER BY login;
