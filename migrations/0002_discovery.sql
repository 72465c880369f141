-- Intent: Helix discovery (issue 3). `channels` remembers each channel's user id and type (the
-- login-to-id cache that survives restarts), whether its whole catalogue has been read once,
-- and a short lease so that two replicas never poll the same channel at once. `vods` gains the
-- metadata Helix gives and the expiry estimate the queue is ordered by; `date` keeps the
-- runbook's name for the broadcast's creation time (Helix `created_at`).

CREATE TABLE channels (
    login              text PRIMARY KEY,
    user_id            text,
    display_name       text,
    broadcaster_type   text        NOT NULL DEFAULT '',
    catalogue_complete boolean     NOT NULL DEFAULT false,
    poll_lease_until   timestamptz,
    last_polled_at     timestamptz,
    last_success_at    timestamptz,
    last_error         text,
    verified_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE vods
    ADD COLUMN published_at   timestamptz,
    ADD COLUMN url            text,
    ADD COLUMN thumbnail_url  text,
    ADD COLUMN viewable       text,
    ADD COLUMN muted_segments jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN retention_days integer,
    ADD COLUMN expires_at     timestamptz,
    ADD COLUMN last_seen_at   timestamptz,
    ADD COLUMN gone_at        timestamptz;

-- The download stage's queue order: manual priority first, then the nearest expiry.
CREATE INDEX vods_queue_idx ON vods (priority DESC, expires_at ASC NULLS LAST, id)
    WHERE state = 'queued';
CREATE INDEX vods_channel_state_idx ON vods (channel, state);
