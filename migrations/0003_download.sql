-- Intent: the download stage (issue 4). A VOD is claimed by one worker at a time with a lease
-- (`claimed_by`, `claim_until`), counts its failed attempts and the time of the next one, keeps
-- the live progress of its download (written at most once a second) and, once verified, the
-- file it produced. `corr` is a correlation id that follows the VOD through every stage.

ALTER TABLE vods
    ADD COLUMN corr                 text NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', ''),
    ADD COLUMN download_attempts    integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at      timestamptz,
    ADD COLUMN download_started_at  timestamptz,
    ADD COLUMN download_finished_at timestamptz,
    ADD COLUMN download_error       text,
    ADD COLUMN download_progress    jsonb,
    ADD COLUMN download_progress_at timestamptz,
    ADD COLUMN file_path            text,
    ADD COLUMN file_size            bigint,
    ADD COLUMN claimed_by           text,
    ADD COLUMN claim_until          timestamptz;

-- What the download stage may take next, in queue order.
CREATE INDEX vods_download_ready_idx ON vods (priority DESC, expires_at ASC NULLS LAST, id)
    WHERE state IN ('queued', 'failed_retryable', 'waiting_for_disk', 'downloading');
