-- Intent: live chat recording (issue 6). A stream being recorded is a `chat_streams` row keyed
-- by its Helix stream id: the runbook's placeholder. It lives in its own table, not in `vods`, so
-- no claim of any pipeline stage can ever pick it up. While the stream is live its messages
-- carry `stream_id` and an offset from the stream's start; when the archive with that stream id
-- appears, reconciliation sets `vod_id` and shifts the offsets by the difference between the two
-- start times (`shift_ms`), in one transaction, once. Messages recorded without a known stream
-- (no Helix credentials) keep both null and are attached to a VOD later by their sent time.
-- The message row gains what a PRIVMSG says beyond its text: colour, /me, bits, reply parent.

CREATE TABLE chat_streams (
    stream_id     text PRIMARY KEY,
    channel       text        NOT NULL,
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    vod_id        bigint REFERENCES vods (id) ON DELETE SET NULL,
    shift_ms      bigint,
    reconciled_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX chat_streams_unreconciled_idx ON chat_streams (channel, started_at)
    WHERE reconciled_at IS NULL;

ALTER TABLE chat_messages
    ADD COLUMN stream_id           text,
    ADD COLUMN color               text,
    ADD COLUMN is_action           boolean NOT NULL DEFAULT false,
    ADD COLUMN bits                integer,
    ADD COLUMN reply_parent_msg_id text;

-- Placeholder messages still waiting for their VOD. (Messages with no stream at all are found
-- through chat_messages_channel_sent_idx; one index fewer to maintain per message written.)
CREATE INDEX chat_messages_placeholder_idx ON chat_messages (stream_id)
    WHERE vod_id IS NULL AND stream_id IS NOT NULL;
