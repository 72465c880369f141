-- Named statements of the archive-completeness work (issue 13): chat replay jobs, replayed
-- messages, chapters, chat coverage. Loaded with queries.sql (names are unique across files).

-- name: replay_enqueue
-- Every VOD whose stream has ended gets a replay job once. A live recording cannot be proven
-- complete (a link may drop in a quiet minute), so each VOD is replayed; what live chat already
-- holds is only marked as seen by both.
INSERT INTO chat_replays (vod_id)
SELECT v.id FROM vods v
WHERE v.state NOT IN ('live', 'placeholder', 'gone', 'canceled', 'skipped', 'skipped_restricted')
  AND NOT EXISTS (SELECT 1 FROM chat_replays r WHERE r.vod_id = v.id)
ON CONFLICT (vod_id) DO NOTHING;

-- name: replay_claim
-- The next due replay job of a VOD still to be archived (not canceled, skipped or gone since it
-- was queued; a restore makes it due again), taken with a lease so replicas split the work; a
-- job whose worker stopped renewing its lease is taken over, at once when that worker was an
-- earlier run of this daemon (same host and data directory: `prefix`), which cannot still run.
UPDATE chat_replays r
SET claimed_by = %(owner)s, claim_until = now() + make_interval(secs => %(lease_s)s),
    attempts = r.attempts + 1, started_at = COALESCE(r.started_at, now()), updated_at = now()
FROM vods v
WHERE v.id = r.vod_id
  AND r.vod_id = (
    SELECT c.vod_id FROM chat_replays c
    WHERE c.state <> 'done' AND c.next_attempt_at <= now()
      AND EXISTS (SELECT 1 FROM vods w WHERE w.id = c.vod_id
                  AND w.state NOT IN ('canceled', 'skipped', 'skipped_restricted', 'gone'))
      AND (c.claim_until IS NULL OR c.claim_until < now()
           OR (starts_with(c.claimed_by, %(prefix)s) AND c.claimed_by <> %(owner)s))
    ORDER BY c.next_attempt_at, c.vod_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING r.vod_id, v.twitch_vod_id, v.channel, v.date, v.duration_s, r.next_offset_s, r.cursor,
          r.chapters_at, r.attempts;

-- name: replay_hold
-- The job's row, locked for the page's transaction, only while it is ours.
SELECT vod_id FROM chat_replays
WHERE vod_id = %(vod_row_id)s AND claimed_by = %(owner)s AND claim_until > now()
FOR UPDATE;

-- name: replay_progress
-- A page stored: the resume point moves and the lease is renewed, only while it is ours.
UPDATE chat_replays
SET next_offset_s = %(offset_s)s, cursor = %(cursor)s, pages = pages + 1,
    messages = messages + %(messages)s, merged = merged + %(merged)s,
    claim_until = now() + make_interval(secs => %(lease_s)s), updated_at = now()
WHERE vod_id = %(vod_row_id)s AND claimed_by = %(owner)s
RETURNING vod_id;

-- name: replay_insert
-- Replayed messages: a new id is a new row (source 2); an id live chat stored already keeps its
-- row and gains the replay's mark. `inserted` tells the two apart (xmax is 0 for a new row).
INSERT INTO chat_messages AS m (msg_id, vod_id, channel, kind, user_id, username, display_name,
                                message, sent_at, offset_ms, raw_tags, color, sources)
SELECT i.msg_id, %(vod_row_id)s, %(channel)s, 'PRIVMSG', i.user_id, i.username, i.display_name,
       i.message, COALESCE(%(vod_start)s::timestamptz, now()) + make_interval(secs => i.offset_s),
       i.offset_s::bigint * 1000,
       i.raw_tags, i.color, 2
FROM unnest(%(msg_ids)s::text[], %(user_ids)s::text[], %(usernames)s::text[],
            %(display_names)s::text[], %(messages)s::text[], %(offsets)s::int[],
            %(raw_tags)s::text[], %(colors)s::text[])
     AS i(msg_id, user_id, username, display_name, message, offset_s, raw_tags, color)
ON CONFLICT (msg_id) DO UPDATE SET sources = m.sources | 2
WHERE (m.sources & 2) = 0
RETURNING (xmax = 0) AS inserted;

-- name: replay_finish
-- The job ends for now: done, unavailable (Twitch refused; asked again later) or pending (put
-- back after failures). Only the worker holding it may end it.
UPDATE chat_replays
SET state = %(state)s, reason = %(reason)s, claimed_by = NULL, claim_until = NULL,
    next_attempt_at = now() + make_interval(secs => %(retry_s)s),
    finished_at = CASE WHEN %(state)s = 'done' THEN now() ELSE finished_at END,
    updated_at = now()
WHERE vod_id = %(vod_row_id)s AND claimed_by = %(owner)s;

-- name: replay_status
-- One VOD's replay job, for /vods/{id}.
SELECT r.state, r.next_offset_s, r.pages, r.messages, r.merged, r.reason, r.attempts,
       r.next_attempt_at, r.finished_at
FROM chat_replays r JOIN vods v ON v.id = r.vod_id
WHERE v.twitch_vod_id = %(vod_id)s;

-- name: chapters_delete
DELETE FROM vod_chapters WHERE vod_id = %(vod_row_id)s;

-- name: chapters_insert
INSERT INTO vod_chapters (vod_id, position, start_ms, duration_ms, title, game_id)
SELECT %(vod_row_id)s, p.position, p.start_ms, p.duration_ms, p.title, p.game_id
FROM unnest(%(positions)s::int[], %(starts)s::bigint[], %(durations)s::bigint[],
            %(titles)s::text[], %(games)s::text[])
     AS p(position, start_ms, duration_ms, title, game_id);

-- name: chapters_fetched
UPDATE chat_replays SET chapters_at = now(), updated_at = now()
WHERE vod_id = %(vod_row_id)s AND claimed_by = %(owner)s;

-- name: chapters_of_vod
-- A VOD's chapters in order, by its Twitch id.
SELECT c.start_ms, c.duration_ms, c.title, c.game_id
FROM vod_chapters c JOIN vods v ON v.id = c.vod_id
WHERE v.twitch_vod_id = %(vod_id)s
ORDER BY c.position;

-- name: chat_coverage_minutes
-- For each minute of a VOD, which sources saw chat in it (bit_or of `sources`: 1 live IRC,
-- 2 replay; 0 none). Minutes past the VOD's duration (chat after its end) are not counted.
WITH v AS (
    SELECT id, GREATEST(1, ceil(COALESCE(duration_s, 0) / 60.0))::int AS minutes
    FROM vods WHERE twitch_vod_id = %(vod_id)s
), m AS (
    SELECT (c.offset_ms / 60000)::int AS minute, bit_or(c.sources)::int AS sources
    FROM chat_messages c JOIN v ON c.vod_id = v.id
    WHERE c.offset_ms >= 0
    GROUP BY 1
)
SELECT g.minute, COALESCE(m.sources, 0)
FROM v CROSS JOIN generate_series(0, v.minutes - 1) AS g(minute)
LEFT JOIN m ON m.minute = g.minute
ORDER BY g.minute;

-- name: extras_enqueue
-- Each published part gets its extras once (the kinds this daemon does).
INSERT INTO youtube_extras (vod_id, part, kind)
SELECT u.vod_id, u.part, k.kind
FROM youtube_uploads u CROSS JOIN unnest(%(kinds)s::text[]) AS k(kind)
WHERE u.video_id IS NOT NULL
ON CONFLICT (vod_id, part, kind) DO NOTHING;

-- name: extras_claim
-- The next due extra of the kinds given, leased like the other stages' work (an earlier run of
-- this daemon, same `prefix`, is taken over at once).
UPDATE youtube_extras e
SET claimed_by = %(owner)s, claim_until = now() + make_interval(secs => %(lease_s)s),
    attempts = e.attempts + 1, updated_at = now()
FROM youtube_uploads u, vods v
WHERE u.vod_id = e.vod_id AND u.part = e.part AND v.id = e.vod_id
  AND (e.vod_id, e.part, e.kind) = (
    SELECT x.vod_id, x.part, x.kind FROM youtube_extras x
    WHERE x.state = 'pending' AND x.next_attempt_at <= now() AND x.kind = ANY(%(kinds)s)
      AND (x.claim_until IS NULL OR x.claim_until < now()
           OR (starts_with(x.claimed_by, %(prefix)s) AND x.claimed_by <> %(owner)s))
    ORDER BY x.next_attempt_at, x.vod_id, x.part, x.kind
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING e.vod_id, e.part, e.kind, e.attempts, u.parts, u.video_id, u.file_path, u.start_s,
          u.duration_s, v.twitch_vod_id, v.thumbnail_url, v.duration_s;

-- name: extras_finish
-- An extra's run ends: done, refused, skipped, or pending again (due after `retry_s`). Only the
-- worker holding it may record it.
UPDATE youtube_extras
SET state = %(state)s, detail = %(detail)s, claimed_by = NULL, claim_until = NULL,
    next_attempt_at = now() + make_interval(secs => %(retry_s)s),
    done_at = CASE WHEN %(state)s = 'done' THEN now() ELSE done_at END, updated_at = now()
WHERE vod_id = %(vod_row_id)s AND part = %(part)s AND kind = %(kind)s
  AND claimed_by = %(owner)s;

-- name: extras_refuse_all
-- YouTube refused this kind for the whole channel (no custom thumbnails, no captions scope):
-- every pending one is recorded as refused at once and never asked again.
UPDATE youtube_extras SET state = 'refused', detail = %(detail)s, claimed_by = NULL,
    claim_until = NULL, updated_at = now()
WHERE kind = %(kind)s AND state = 'pending';

-- name: extras_of_vod
-- A VOD's extras, for /vods/{id}: what is done and what is still to do.
SELECT e.part, e.kind, e.state, e.detail, e.attempts, e.next_attempt_at, e.done_at
FROM youtube_extras e JOIN vods v ON v.id = e.vod_id
WHERE v.twitch_vod_id = %(vod_id)s
ORDER BY e.part, e.kind;
