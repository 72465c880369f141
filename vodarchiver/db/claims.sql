-- The stages' claims, the time their next work falls due, and the wake-up channel (migration
-- 0014). Every case a stage may claim reads an index of its own (its first 16 entries, no lock),
-- so a claim that finds nothing costs the same however many VODs there are; the best of those
-- candidates, in queue order across the cases, is then locked with SKIP LOCKED and rechecked.
-- Sixteen per case leave a candidate to each of that many workers claiming at the same instant.

-- name: download_claim
-- transition: download_claimed
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
    WHERE id = ANY(ARRAY(
            (SELECT id FROM vods WHERE state = 'queued'
             ORDER BY priority DESC, expires_at ASC NULLS LAST, id LIMIT 16)
            UNION ALL
            (SELECT id FROM vods WHERE state = 'failed_retryable'
               AND download_state <> 'downloaded' AND next_attempt_at <= now()
             ORDER BY priority DESC, expires_at ASC NULLS LAST, id LIMIT 16)
            UNION ALL
            (SELECT id FROM vods WHERE state = 'waiting_for_disk'
               AND updated_at <= now() - interval '1 minute'
             ORDER BY priority DESC, expires_at ASC NULLS LAST, id LIMIT 16)
            UNION ALL
            (SELECT id FROM vods WHERE state = 'downloading' AND claim_until < now()
             ORDER BY priority DESC, expires_at ASC NULLS LAST, id LIMIT 16)))
      AND (state = 'queued'
           OR (state = 'failed_retryable' AND next_attempt_at <= now()
               AND download_state <> 'downloaded')
           OR (state = 'waiting_for_disk' AND updated_at <= now() - interval '1 minute')
           OR (state = 'downloading' AND claim_until < now()))
    ORDER BY priority DESC, expires_at ASC NULLS LAST, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING id, twitch_vod_id, channel, url, duration_s, download_attempts, corr, title,
          discard_files;

-- name: download_next_due
-- Seconds until a download retry, a disk recheck or a lease falls due (NULL: none waits); the
-- first entry of each case's index.
SELECT extract(epoch FROM LEAST(
    (SELECT min(next_attempt_at) FROM vods
     WHERE state = 'failed_retryable' AND download_state <> 'downloaded'),
    (SELECT min(updated_at) FROM vods WHERE state = 'waiting_for_disk') + interval '1 minute',
    (SELECT min(claim_until) FROM vods WHERE state = 'downloading')) - now())::float8;

-- name: upload_claim
-- transition: upload_claimed
-- The next downloaded VOD to publish, in queue order: never uploaded yet, due for a retry, or
-- abandoned by a worker whose lease ran out.
UPDATE vods SET
    state = 'uploading', claimed_by = %(owner)s,
    claim_until = now() + make_interval(secs => %(lease_s)s),
    upload_started_at = COALESCE(upload_started_at, now()), next_attempt_at = NULL,
    updated_at = now()
WHERE id = (
    SELECT id FROM vods
    WHERE id = ANY(ARRAY(
            (SELECT id FROM vods WHERE state = 'downloaded' AND file_path IS NOT NULL
             ORDER BY priority DESC, expires_at ASC NULLS LAST, id LIMIT 16)
            UNION ALL
            (SELECT id FROM vods WHERE state = 'failed_retryable'
               AND download_state = 'downloaded' AND file_path IS NOT NULL
               AND next_attempt_at <= now()
             ORDER BY priority DESC, expires_at ASC NULLS LAST, id LIMIT 16)
            UNION ALL
            (SELECT id FROM vods WHERE state = 'uploading' AND file_path IS NOT NULL
               AND claim_until < now()
             ORDER BY priority DESC, expires_at ASC NULLS LAST, id LIMIT 16)))
      AND (state = 'downloaded'
           OR (state = 'failed_retryable' AND download_state = 'downloaded'
               AND next_attempt_at <= now())
           OR (state = 'uploading' AND claim_until < now()))
      AND file_path IS NOT NULL
    ORDER BY priority DESC, expires_at ASC NULLS LAST, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING id, twitch_vod_id, channel, title, date, url, duration_s, muted_segments, file_path,
          upload_attempts, corr, created_at, generation, delete_old_videos;

-- name: upload_next_due
-- Seconds until an upload retry or a lease falls due (NULL: none waits).
SELECT extract(epoch FROM LEAST(
    (SELECT min(next_attempt_at) FROM vods WHERE state = 'failed_retryable'
       AND download_state = 'downloaded' AND file_path IS NOT NULL),
    (SELECT min(claim_until) FROM vods WHERE state = 'uploading' AND file_path IS NOT NULL))
    - now())::float8;

-- name: claimable_listen
-- The wake-ups (migration 0014's trigger): a stage's name when a VOD may have become claimable.
LISTEN vodarchiver_claimable;
