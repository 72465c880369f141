-- Named statements of notifications (issue 12), loaded with queries.sql (queries.py).

-- name: notify_claim
-- Due events, oldest first: pending and due, or claimed by a sender whose lease ran out.
UPDATE notifications SET state = 'sending', claimed_by = %(owner)s,
       claim_until = now() + make_interval(secs => %(lease_s)s)
WHERE id IN (
    SELECT id FROM notifications
    WHERE (state = 'pending' AND next_attempt_at <= now())
       OR (state = 'sending' AND claim_until < now())
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING id, event, vod_id, payload, attempts, delivered_to, created_at;

-- name: notify_delivered
-- Some targets took it; done when every target has (only while this sender still owns it).
UPDATE notifications SET
    delivered_to = ARRAY(SELECT DISTINCT unnest(delivered_to || %(targets)s::text[])),
    state = CASE WHEN %(done)s THEN 'sent' ELSE state END,
    sent_at = CASE WHEN %(done)s THEN now() ELSE sent_at END,
    claimed_by = CASE WHEN %(done)s THEN NULL ELSE claimed_by END,
    claim_until = CASE WHEN %(done)s THEN NULL ELSE claim_until END
WHERE id = %(id)s AND claimed_by = %(owner)s
RETURNING id;

-- name: notify_retry
-- A target refused it: try again later, or give up (`failed`) past the deadline.
UPDATE notifications SET
    state = CASE WHEN %(give_up)s THEN 'failed' ELSE 'pending' END,
    attempts = attempts + 1, last_error = %(error)s,
    next_attempt_at = now() + make_interval(secs => %(delay_s)s),
    claimed_by = NULL, claim_until = NULL
WHERE id = %(id)s AND claimed_by = %(owner)s
RETURNING id;

-- name: notify_skip
-- Not wanted (NOTIFY_EVENTS, no NOTIFY_URLS): recorded as skipped, never sent later.
UPDATE notifications SET state = 'skipped', last_error = %(why)s,
       claimed_by = NULL, claim_until = NULL
WHERE id = %(id)s AND claimed_by = %(owner)s;

-- name: notify_release_previous
-- At start-up: events an earlier, killed run of this daemon held are released at once.
UPDATE notifications SET claim_until = now() - interval '1 second'
WHERE state = 'sending' AND starts_with(claimed_by, %(prefix)s)
  AND NOT starts_with(claimed_by, %(owner)s);

-- name: notify_insert
-- A periodic condition: once per dedupe key, whoever raises it and however often.
INSERT INTO notifications (event, dedupe_key, vod_id, payload)
VALUES (%(event)s, %(dedupe_key)s, %(vod_id)s, %(payload)s)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id;

-- name: notify_prune
-- Finished rows are kept a while for /status and debugging, then removed.
DELETE FROM notifications
WHERE state IN ('sent', 'skipped', 'failed') AND created_at < now() - make_interval(days => %(days)s);

-- name: notify_status
SELECT count(*) FILTER (WHERE state IN ('pending', 'sending')) AS pending,
       count(*) FILTER (WHERE state IN ('pending', 'sending') AND attempts > 0) AS retrying,
       count(*) FILTER (WHERE state = 'failed') AS failed,
       count(*) FILTER (WHERE state = 'sent') AS sent,
       max(sent_at) AS last_sent_at
FROM notifications;

-- name: notify_failing
-- Deliveries that keep failing, newest first, for /status (never a target's URL).
SELECT id, event, vod_id, state, attempts, last_error, next_attempt_at, created_at
FROM notifications
WHERE attempts > 0 AND state IN ('pending', 'sending', 'failed')
ORDER BY id DESC LIMIT 10;

-- name: notify_at_risk
-- VODs not archived yet whose Twitch copy expires within the window.
SELECT twitch_vod_id, channel, title, state, expires_at, url, generation FROM vods
WHERE state IN ('live', 'queued', 'waiting_for_disk', 'downloading', 'downloaded',
                'waiting_for_auth', 'uploading', 'failed_retryable')
  AND expires_at > now() AND expires_at < now() + make_interval(secs => %(window_s)s);

-- name: notify_chat_overdue
-- Chat placeholders still without their VOD a window after their stream ended.
SELECT s.stream_id, s.channel, s.started_at, s.ended_at,
       (SELECT count(*) FROM chat_messages m WHERE m.stream_id = s.stream_id) AS messages
FROM chat_streams s
WHERE s.reconciled_at IS NULL AND s.ended_at IS NOT NULL
  AND s.ended_at < now() - make_interval(secs => %(window_s)s);

-- name: notify_token_age
SELECT provider, generation, refresh_issued_at, revoked_at FROM oauth_tokens
WHERE provider = %(provider)s AND sealed IS NOT NULL;

-- name: notify_episode_open
-- A condition (disk low, credentials refused) begins: the first replica to see it names the
-- episode; the others read the same name.
INSERT INTO kv (key, value, updated_at) VALUES (%(key)s, %(value)s, now())
ON CONFLICT (key) DO UPDATE SET updated_at = kv.updated_at
RETURNING value;

-- name: notify_episode_close
DELETE FROM kv WHERE key = %(key)s;
