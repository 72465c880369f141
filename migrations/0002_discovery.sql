-- Intent: Helix discovery (issue 3). `channels` remembers each channel's user id and type (the
-- login-to-id cache that survives restarts), its watermark (the newest VOD time up to which the
-- listing is known to have been read without gaps), when it was last read in full, and a lease
-- with an owner so that two replicas never poll the same channel at once. `vods` gains the
-- metadata Helix gives, the expiry estimate the queue is ordered by, and `missing_since` (gone
-- needs two confirmed misses some time apart); `date` keeps the runbook's name for the
-- broadcast's creation time (Helix `created_at`).

CREATE TABLE channels (
    login              text PRIMARY KEY,
    user_id            text,
    display_name       text,
    broadcaster_type   text        NOT NULL DEFAULT '',
    watermark_at       timestamptz,
    full_read_at       timestamptz,
    poll_lease_owner   text,
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
    ADD COLUMN missing_since  timestamptz,
    ADD COLUMN gone_at        timestamptz;

-- The download stage's queue order: manual priority first, then the nearest expiry.
CREATE INDEX vods_queue_idx ON vods (priority DESC, expires_at ASC NULLS LAST, id)
    WHERE state = 'queued';
CREATE INDEX vods_channel_state_idx ON vods (channel, state);
