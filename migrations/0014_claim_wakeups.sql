-- Intent: an idle claim costs the same at 1,000 and at 1,000,000 VODs, and workers wait for work
-- instead of polling (issue 15).
--
-- Each case a stage may claim has an index of its own, so a claim that finds nothing reads the
-- first entry of a handful of small indexes. The old partial indexes took every state a stage may
-- claim in one, so a claim with nothing due walked every VOD failed for a retry not yet due,
-- every VOD waiting for disk and every VOD in progress: they go. `vods_queue_idx` (0002) already
-- serves `queued`. A case whose rows wait for a time (a retry, a disk recheck, a lease) is
-- indexed by that time: the claim reads the due ones only, and the next due time is its first
-- entry.
--
-- A write that may make a VOD claimable `pg_notify`s the channel `vodarchiver_claimable` with the
-- stage that may claim it ('download' or 'upload'); the daemon LISTENs on one connection and
-- wakes that stage's workers. A trigger rather than the writing statements, so every path counts:
-- discovery's inserts, the stages' own outcomes, the operator's actions and the runbook's SQL.
-- PostgreSQL delivers a notification at commit and folds identical ones of one transaction, so a
-- page of a hundred new VODs is one wake-up. Heartbeats and progress writes (a lease renewed
-- into the future) notify nothing. Not `UPDATE OF state`: 0007's BEFORE trigger changes the state
-- of the runbook's UPDATE, which does not name the column.

DROP INDEX vods_download_ready_idx;
DROP INDEX vods_upload_ready_idx;

CREATE INDEX vods_claim_download_retry_idx ON vods (next_attempt_at)
    WHERE state = 'failed_retryable' AND download_state <> 'downloaded';
CREATE INDEX vods_claim_disk_idx ON vods (updated_at) WHERE state = 'waiting_for_disk';
CREATE INDEX vods_claim_downloading_idx ON vods (claim_until) WHERE state = 'downloading';
CREATE INDEX vods_claim_downloaded_idx ON vods (priority DESC, expires_at ASC NULLS LAST, id)
    WHERE state = 'downloaded' AND file_path IS NOT NULL;
CREATE INDEX vods_claim_upload_retry_idx ON vods (next_attempt_at)
    WHERE state = 'failed_retryable' AND download_state = 'downloaded' AND file_path IS NOT NULL;
CREATE INDEX vods_claim_uploading_idx ON vods (claim_until) WHERE state = 'uploading';

CREATE FUNCTION vods_notify_claimable() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    stage text;
BEGIN
    IF NEW.state IN ('downloading', 'uploading')
       AND (NEW.claim_until IS NULL OR NEW.claim_until > now()) THEN
        RETURN NULL;  -- a claim or a renewed lease: nothing for anyone else to take
    END IF;
    stage := CASE
        WHEN NEW.state IN ('queued', 'waiting_for_disk', 'downloading') THEN 'download'
        WHEN NEW.state IN ('downloaded', 'uploading') THEN 'upload'
        WHEN NEW.state = 'failed_retryable' AND NEW.download_state = 'downloaded' THEN 'upload'
        WHEN NEW.state = 'failed_retryable' THEN 'download'
    END;
    IF stage IS NOT NULL THEN
        PERFORM pg_notify('vodarchiver_claimable', stage);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER vods_notify_claimable_insert AFTER INSERT ON vods FOR EACH ROW
    EXECUTE FUNCTION vods_notify_claimable();
CREATE TRIGGER vods_notify_claimable_update AFTER UPDATE ON vods FOR EACH ROW
    WHEN (NEW.state IS DISTINCT FROM OLD.state
          OR NEW.next_attempt_at IS DISTINCT FROM OLD.next_attempt_at
          OR NEW.file_path IS DISTINCT FROM OLD.file_path
          OR (NEW.claim_until IS DISTINCT FROM OLD.claim_until AND NEW.claim_until <= now()))
    EXECUTE FUNCTION vods_notify_claimable();
