-- Intent: the VOD lifecycle as one module (vodarchiver/lifecycle.py) with operator actions on it.
-- `skipped` is the operator's "never archive this one". `generation` counts reprocesses: the
-- exactly-once marker carries it, so a reprocessed VOD's new parts never adopt the old videos;
-- the old parts move to `youtube_uploads_history` (kept listed; deleted on YouTube only when the
-- operator asked, after every new part is confirmed). `discard_files` tells the download stage
-- to throw away an earlier generation's files before downloading again. `vod_audit` records
-- every operator action (and the runbook's SQL recipe) with who, when, from and to.
-- The runbook's force-reprocess recipe (`UPDATE vods SET processed=0, processing_error=NULL,
-- youtube_url=NULL WHERE twitch_vod_id='...'`) is turned into the reprocess event by a trigger:
-- an UPDATE that clears those columns without changing `state` can only be an operator's.

ALTER TABLE vods DROP CONSTRAINT vods_state_check;
ALTER TABLE vods ADD CONSTRAINT vods_state_check CHECK (state IN (
    'live', 'queued', 'waiting_for_disk', 'downloading', 'downloaded', 'waiting_for_auth',
    'uploading', 'uploaded', 'failed_retryable', 'failed_permanent', 'canceled', 'skipped',
    'gone', 'skipped_restricted', 'placeholder'));
ALTER TABLE vods DROP CONSTRAINT vods_download_state_check;
ALTER TABLE vods ADD CONSTRAINT vods_download_state_check CHECK (download_state IN (
    'pending', 'waiting_for_disk', 'downloading', 'downloaded', 'failed_retryable',
    'failed_permanent', 'canceled', 'skipped', 'gone', 'skipped_restricted'));

ALTER TABLE vods
    ADD COLUMN generation       integer NOT NULL DEFAULT 1,
    ADD COLUMN discard_files    boolean NOT NULL DEFAULT false,
    ADD COLUMN delete_old_videos boolean NOT NULL DEFAULT false;

CREATE TABLE youtube_uploads_history (
    vod_id        bigint      NOT NULL REFERENCES vods (id) ON DELETE CASCADE,
    generation    integer     NOT NULL,
    part          integer     NOT NULL,
    parts         integer     NOT NULL,
    video_id      text,
    upload_status text,
    marker        text        NOT NULL,
    title         text,
    uploaded_at   timestamptz,
    replaced_at   timestamptz NOT NULL DEFAULT now(),
    delete_wanted boolean     NOT NULL DEFAULT false,
    deleted_at    timestamptz,
    PRIMARY KEY (vod_id, generation, part)
);

CREATE TABLE vod_audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    vod_id     text,                 -- the Twitch id; NULL for an action on the whole daemon
    action     text        NOT NULL,
    from_state text,
    to_state   text,
    actor      text        NOT NULL,  -- token | session | loopback | cli | sql | system
    corr       text,
    detail     jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX vod_audit_vod_idx ON vod_audit (vod_id, id DESC);

-- The old parts of a reprocessed VOD, kept as its history (called by the trigger and the action).
CREATE FUNCTION vods_archive_parts(vod bigint, gen integer, delete_old boolean) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO youtube_uploads_history (vod_id, generation, part, parts, video_id,
                                         upload_status, marker, title, uploaded_at, delete_wanted)
    SELECT vod_id, gen, part, parts, video_id, upload_status, marker, title, uploaded_at,
           delete_old AND video_id IS NOT NULL
    FROM youtube_uploads WHERE vod_id = vod
    ON CONFLICT DO NOTHING;
    DELETE FROM youtube_uploads WHERE vod_id = vod;
$$;

-- transition: reprocess (actor sql)
CREATE FUNCTION vods_runbook_reprocess() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state NOT IN ('uploaded', 'downloaded', 'waiting_for_auth', 'failed_retryable',
                         'failed_permanent', 'canceled', 'skipped') THEN
        RETURN NEW;  -- a worker holds it, or it is not archived yet: nothing to reprocess
    END IF;
    PERFORM vods_archive_parts(OLD.id, OLD.generation, false);
    NEW.state := 'queued';
    NEW.download_state := 'pending';
    NEW.generation := OLD.generation + 1;
    NEW.discard_files := true;
    NEW.delete_old_videos := false;
    NEW.processed := 0;
    NEW.download_attempts := 0;
    NEW.upload_attempts := 0;
    NEW.next_attempt_at := NULL;
    NEW.download_error := NULL;
    NEW.upload_error := NULL;
    NEW.download_progress := NULL;
    NEW.uploaded_at := NULL;
    NEW.upload_started_at := NULL;
    NEW.file_path := NULL;
    NEW.file_size := NULL;
    NEW.updated_at := now();
    INSERT INTO vod_audit (vod_id, action, from_state, to_state, actor, corr, detail)
    VALUES (OLD.twitch_vod_id, 'reprocess', OLD.state, 'queued', 'sql', NEW.corr,
            jsonb_build_object('via', 'the runbook''s UPDATE', 'generation', NEW.generation,
                               'previous_youtube_url', OLD.youtube_url));
    RETURN NEW;
END;
$$;

CREATE TRIGGER vods_runbook_reprocess BEFORE UPDATE ON vods FOR EACH ROW
WHEN (NEW.state = OLD.state AND NEW.generation = OLD.generation AND (
        (OLD.processed = 1 AND NEW.processed = 0)
     OR (OLD.youtube_url IS NOT NULL AND NEW.youtube_url IS NULL)
     OR (OLD.state IN ('failed_retryable', 'failed_permanent')
         AND OLD.processing_error IS NOT NULL AND NEW.processing_error IS NULL)))
EXECUTE FUNCTION vods_runbook_reprocess();
