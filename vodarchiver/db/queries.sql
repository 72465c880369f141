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
-- The queue order: manual priority first, then the nearest expiry.
SELECT twitch_vod_id, channel, stream_id, title, state, download_state, priority, date,
       published_at, duration_s, expires_at, youtube_url, processing_error, url, gone_at
FROM vods
WHERE (%(channel)s::text IS NULL OR channel = %(channel)s)
  AND (%(state)s::text IS NULL OR state = %(state)s)
ORDER BY priority DESC, expires_at ASC NULLS LAST, id
LIMIT %(limit)s OFFSET %(offset)s;

-- name: vod_get
SELECT twitch_vod_id, channel, stream_id, title, description, state, download_state, priority,
       date, published_at, duration_s, url, thumbnail_url, viewable, muted_segments,
       retention_days, expires_at, last_seen_at, gone_at, youtube_url, processing_error,
       processed, corr, download_attempts, next_attempt_at, download_started_at,
       download_finished_at, download_progress, download_progress_at, file_path, file_size,
       created_at, updated_at
FROM vods WHERE twitch_vod_id = %(id)s;

-- name: vods_expiring_soon
SELECT count(*) FROM vods
WHERE state IN ('live', 'queued', 'waiting_for_disk', 'downloading', 'downloaded',
                'waiting_for_auth', 'uploading', 'failed_retryable')
  AND expires_at < now() + make_interval(hours => %(hours)s);

-- name: download_claim
-- The next VOD to download, in queue order: queued, due for a retry, waiting for disk (not
-- rechecked more than once a minute, so it cannot hold up the queue), or abandoned by a worker
-- whose lease ran out.
UPDATE vods SET
    state = 'downloading', download_state = 'downloading',
    claimed_by = %(owner)s, claim_until = now() + make_interval(secs => %(lease_s)s),
    download_started_at = now(), download_progress = NULL, next_attempt_at = NULL,
    updated_at = now()
WHERE id = (
    SELECT id FROM vods
    WHERE state = 'queued'
       OR (state = 'failed_retryable' AND next_attempt_at <= now())
       OR (state = 'waiting_for_disk' AND updated_at <= now() - interval '1 minute')
       OR (state = 'downloading' AND claim_until < now())
    ORDER BY priority DESC, expires_at ASC NULLS LAST, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING id, twitch_vod_id, channel, url, duration_s, download_attempts, corr, title;

-- name: download_progress
-- Renew the lease and store progress; no row means the VOD was canceled or taken over.
UPDATE vods SET claim_until = now() + make_interval(secs => %(lease_s)s),
                download_progress = %(progress)s, download_progress_at = now()
WHERE id = %(id)s AND claimed_by = %(owner)s AND state = 'downloading'
RETURNING id;

-- name: download_finish
-- Record how an attempt ended, if this worker still owns the VOD (a cancel wins).
UPDATE vods SET
    state = %(state)s, download_state = %(download_state)s,
    download_attempts = download_attempts + %(failed)s,
    next_attempt_at = %(next_attempt_at)s,
    download_error = %(error)s, processing_error = %(error)s,
    file_path = COALESCE(%(file_path)s, file_path), file_size = COALESCE(%(file_size)s, file_size),
    download_finished_at = CASE WHEN %(state)s = 'downloaded' THEN now() ELSE download_finished_at END,
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

-- name: vod_cancel
-- Cancel a VOD that is not archived yet; returns its previous state.
UPDATE vods AS v SET state = 'canceled', download_state = 'canceled',
                     claimed_by = NULL, claim_until = NULL, next_attempt_at = NULL,
                     updated_at = now()
FROM (SELECT id, state FROM vods WHERE twitch_vod_id = %(id)s FOR UPDATE) AS before
WHERE v.id = before.id
  AND before.state IN ('live', 'queued', 'waiting_for_disk', 'downloading', 'failed_retryable',
                       'failed_permanent')
RETURNING before.state, v.channel;

-- name: vods_waiting_for_disk
SELECT count(*) FROM vods WHERE state = 'waiting_for_disk';

-- name: kv_ema
-- Exponential moving average in kv (the runbook's avg_download_ms, ...).
INSERT INTO kv (key, value, updated_at) VALUES (%(key)s, %(sample)s::text, now())
ON CONFLICT (key) DO UPDATE SET
    value = (%(alpha)s * %(sample)s + (1 - %(alpha)s) * kv.value::double precision)::text,
    updated_at = now();

-- name: chat_streams_lock
-- Taken by a chat write before it reads the placeholders it writes to: a reconciliation waits
-- for the write to commit, and a write that starts during one sees its result.
SELECT stream_id FROM chat_streams WHERE stream_id = ANY(%(ids)s) ORDER BY stream_id FOR SHARE;

-- name: chat_quiet
-- The staging table is created once per connection; its "already exists" notice is noise.
SET LOCAL client_min_messages = warning;

-- name: chat_stage_create
-- Per-connection staging for COPY (COPY cannot skip duplicates; the INSERT below does).
CREATE TEMP TABLE IF NOT EXISTS chat_in (
    msg_id text, channel text, kind text, user_id text, username text, display_name text,
    message text, sent_ms bigint, tags jsonb, stream_id text, color text, is_action boolean,
    bits integer, reply_parent_msg_id text
) ON COMMIT DELETE ROWS;

-- name: chat_copy
COPY chat_in (msg_id, channel, kind, user_id, username, display_name, message, sent_ms, tags,
              stream_id, color, is_action, bits, reply_parent_msg_id) FROM STDIN;

-- name: chat_insert
-- The staged batch into chat_messages. Twitch's id is the key, so a line replayed after a
-- reconnect is dropped. A message of a known stream gets its offset from the stream's start, and
-- goes straight to the VOD (offset shifted) once that stream is reconciled. Returns how many
-- rows each channel really gained.
WITH inserted AS (
INSERT INTO chat_messages (
    msg_id, vod_id, channel, kind, user_id, username, display_name, message, sent_at, offset_ms,
    tags, stream_id, color, is_action, bits, reply_parent_msg_id)
SELECT i.msg_id, s.vod_id, i.channel, i.kind, i.user_id, i.username, i.display_name, i.message,
       to_timestamp(i.sent_ms / 1000.0),
       CASE WHEN s.stream_id IS NULL THEN NULL
            ELSE i.sent_ms - (extract(epoch FROM s.started_at) * 1000)::bigint
                 + COALESCE(s.shift_ms, 0) END,
       i.tags, i.stream_id, i.color, i.is_action, i.bits, i.reply_parent_msg_id
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
-- after the (offset, id) of the previous page's last message.
SELECT m.msg_id, m.kind, m.user_id, m.username, m.display_name, m.message, m.sent_at,
       m.offset_ms, m.deleted, m.color, m.is_action, m.bits, m.reply_parent_msg_id, m.tags
FROM chat_messages m JOIN vods v ON v.id = m.vod_id
WHERE v.twitch_vod_id = %(vod_id)s
  AND m.offset_ms >= %(from_ms)s AND m.offset_ms < %(to_ms)s
  AND (m.offset_ms, m.msg_id) > (%(after_ms)s, %(after_id)s)
ORDER BY m.offset_ms, m.msg_id
LIMIT %(limit)s;
