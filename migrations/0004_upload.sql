-- Intent: the upload stage (issue 5). OAuth tokens are kept sealed (AES-256-GCM, bound to their
-- row) in `sealed` with the `scheme` that opens them; `generation` counts refresh-token changes so
-- a rotation replaces the old token atomically (compare and swap) and a new token is noticed by
-- every replica; the plaintext columns of the runbook's table are dropped so nothing can write a
-- token in clear by mistake. `youtube_uploads` has one row per part of a VOD: its file and
-- fingerprint, the resumable session URI (stored before the first byte is sent), how much YouTube
-- confirmed, and the video once it exists. `vods` gains the upload stage's attempt count, error
-- and times.

ALTER TABLE oauth_tokens
    DROP COLUMN access_token,
    DROP COLUMN refresh_token,
    DROP COLUMN token_type,
    ADD COLUMN sealed           bytea,
    ADD COLUMN scheme           text NOT NULL DEFAULT 'aes-256-gcm',
    ADD COLUMN generation       bigint NOT NULL DEFAULT 0,
    ADD COLUMN bootstrap_sha256 text,
    ADD COLUMN revoked_at       timestamptz,
    ADD COLUMN revoked_reason   text,
    ADD CONSTRAINT oauth_tokens_scheme_check CHECK (scheme IN ('aes-256-gcm', 'plaintext'));

CREATE TABLE youtube_uploads (
    vod_id             bigint      NOT NULL REFERENCES vods (id) ON DELETE CASCADE,
    part               integer     NOT NULL,
    parts              integer     NOT NULL,
    file_path          text        NOT NULL,
    file_size          bigint      NOT NULL,
    fingerprint        text        NOT NULL,
    start_s            double precision NOT NULL DEFAULT 0,
    duration_s         double precision,
    marker             text        NOT NULL,
    title              text,
    session_uri        text,
    session_started_at timestamptz,
    sessions_started   integer     NOT NULL DEFAULT 0,
    bytes_confirmed    bigint      NOT NULL DEFAULT 0,
    bytes_sent         bigint      NOT NULL DEFAULT 0,
    video_id           text,
    upload_status      text,
    status_reason      text,
    adopted            boolean     NOT NULL DEFAULT false,
    playlist_added     boolean     NOT NULL DEFAULT false,
    uploaded_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vod_id, part),
    CONSTRAINT youtube_uploads_part_check CHECK (part BETWEEN 1 AND parts)
);

CREATE UNIQUE INDEX youtube_uploads_video_idx ON youtube_uploads (video_id)
    WHERE video_id IS NOT NULL;

ALTER TABLE vods
    ADD COLUMN upload_attempts    integer NOT NULL DEFAULT 0,
    ADD COLUMN upload_error       text,
    ADD COLUMN upload_started_at  timestamptz,
    ADD COLUMN uploaded_at        timestamptz;

-- What the upload stage may take next, in queue order.
CREATE INDEX vods_upload_ready_idx ON vods (priority DESC, expires_at ASC NULLS LAST, id)
    WHERE state IN ('downloaded', 'failed_retryable', 'uploading');
