-- The web console's read queries (issue 11). Filters written as `(%(x)s IS NULL OR ...)` are
-- run unprepared (see console_store.py), so PostgreSQL plans each with its real values.

-- name: console_at_risk
-- VODs not on YouTube yet that Twitch is expected to delete within the window, soonest first.
SELECT twitch_vod_id, channel, title, state, expires_at
FROM vods
WHERE state IN ('live', 'queued', 'waiting_for_disk', 'downloading', 'downloaded',
                'waiting_for_auth', 'uploading', 'failed_retryable')
  AND expires_at < now() + make_interval(secs => %(window_s)s)
ORDER BY expires_at, id
LIMIT %(limit)s;

-- name: console_active
-- Downloads and uploads running now, with the upload's confirmed bytes over all its parts.
SELECT v.twitch_vod_id, v.channel, v.title, v.state, v.download_progress,
       v.download_progress_at, v.upload_started_at,
       u.bytes_done AS upload_bytes_done, u.bytes_total AS upload_bytes_total
FROM vods v
LEFT JOIN LATERAL (
    SELECT sum(y.bytes_confirmed) AS bytes_done, sum(y.file_size) AS bytes_total
    FROM youtube_uploads y WHERE y.vod_id = v.id
) u ON v.state = 'uploading'
WHERE v.state IN ('downloading', 'uploading')
ORDER BY v.state, v.id
LIMIT 50;

-- name: console_vods_by_expiry
-- A page of VODs, nearest expiry first (none last), after the previous page's (key, id).
SELECT twitch_vod_id, channel, title, state, date, expires_at, duration_s, youtube_url,
       coalesce(expires_at, 'infinity'::timestamptz)::text AS sort_key, id AS sort_id
FROM vods
WHERE (%(channel)s::text IS NULL OR channel = %(channel)s)
  AND (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(title)s::text IS NULL OR title ILIKE %(title)s)
  AND (coalesce(expires_at, 'infinity'::timestamptz), id)
      > (%(after_key)s::timestamptz, %(after_id)s::bigint)
ORDER BY coalesce(expires_at, 'infinity'::timestamptz), id
LIMIT %(limit)s;

-- name: console_vods_by_date
-- A page of VODs, newest first (by Twitch's date, else when we found it), after (key, id).
SELECT twitch_vod_id, channel, title, state, date, expires_at, duration_s, youtube_url,
       coalesce(date, created_at)::text AS sort_key, id AS sort_id
FROM vods
WHERE (%(channel)s::text IS NULL OR channel = %(channel)s)
  AND (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(title)s::text IS NULL OR title ILIKE %(title)s)
  AND (coalesce(date, created_at), id) < (%(after_key)s::timestamptz, %(after_id)s::bigint)
ORDER BY coalesce(date, created_at) DESC, id DESC
LIMIT %(limit)s;

-- name: console_channels
-- The configured channels as discovery last saw them, with their live VOD and VOD count.
SELECT l.login, c.display_name, c.broadcaster_type, c.last_polled_at, c.last_success_at,
       c.last_error,
       (SELECT v.twitch_vod_id FROM vods v
        WHERE v.channel = l.login AND v.state = 'live' LIMIT 1) AS live_vod,
       (SELECT count(*) FROM vods v WHERE v.channel = l.login) AS vods
FROM unnest(%(logins)s::text[]) AS l (login)
LEFT JOIN channels c ON c.login = l.login
ORDER BY l.login;

-- name: console_chat_search
-- A bounded step of a chat search: read at most `scan` messages in (offset, id) order after the
-- cursor, and return the first `limit` of them that match (text ILIKE pattern, author), each
-- with the last message read and how many were read, so the caller can go on from there. One
-- row with NULL message columns when nothing read matched; no row when nothing was left to read.
WITH scanned AS MATERIALIZED (
    SELECT m.msg_id, m.kind, m.user_id, m.username, m.display_name, m.message, m.sent_at,
           m.offset_ms, m.deleted, m.color, m.is_action, m.bits, m.reply_parent_msg_id, m.tags,
           m.raw_tags
    FROM chat_messages m
    WHERE m.vod_id = (SELECT id FROM vods WHERE twitch_vod_id = %(vod_id)s)
      AND m.offset_ms >= %(from_ms)s
      AND (m.offset_ms, m.msg_id) > (%(after_ms)s, %(after_id)s)
    ORDER BY m.offset_ms, m.msg_id
    LIMIT %(scan)s
), edge AS (
    SELECT offset_ms AS edge_offset_ms, msg_id AS edge_msg_id, count(*) OVER () AS scanned
    FROM scanned ORDER BY offset_ms DESC, msg_id DESC LIMIT 1
)
SELECT hit.*, edge.edge_offset_ms, edge.edge_msg_id, edge.scanned
FROM edge LEFT JOIN LATERAL (
    SELECT * FROM scanned s
    WHERE (%(text)s::text IS NULL OR s.message ILIKE %(text)s)
      AND (%(user)s::text IS NULL OR s.username = %(user)s OR lower(s.display_name) = %(user)s)
    ORDER BY s.offset_ms, s.msg_id
    LIMIT %(limit)s
) hit ON true
ORDER BY hit.offset_ms, hit.msg_id;
