-- Intent: the archive as complete as Twitch's (issue 13). Chat replay through Twitch GQL fills
-- what the live recorder missed: a message keeps one row (Twitch's id is the key) and `sources`
-- says who saw it (a bitmask: 1 live IRC, 2 GQL replay), so the completeness figures can tell
-- the minutes only one source saw. `chat_replays` is each VOD's replay job: claimed with a lease
-- like the other stages, resumable from `next_offset_s`/`cursor`, never a failure of the VOD
-- (`unavailable` with Twitch's reason, asked again at `next_attempt_at`). `vod_chapters` holds the
-- GQL chapters (games played) used for descriptions and split points.

ALTER TABLE chat_messages ADD COLUMN sources smallint NOT NULL DEFAULT 1;

CREATE TABLE chat_replays (
    vod_id          bigint PRIMARY KEY REFERENCES vods (id) ON DELETE CASCADE,
    state           text        NOT NULL DEFAULT 'pending',
    next_offset_s   integer     NOT NULL DEFAULT 0,
    cursor          text,
    pages           integer     NOT NULL DEFAULT 0,
    messages        bigint      NOT NULL DEFAULT 0,
    merged          bigint      NOT NULL DEFAULT 0,
    reason          text,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    claim_until     timestamptz,
    chapters_at     timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_replays_state_check CHECK (state IN ('pending', 'done', 'unavailable'))
);

-- What a replay worker may take next.
CREATE INDEX chat_replays_due_idx ON chat_replays (next_attempt_at) WHERE state <> 'done';

CREATE TABLE vod_chapters (
    vod_id      bigint  NOT NULL REFERENCES vods (id) ON DELETE CASCADE,
    position    integer NOT NULL,
    start_ms    bigint  NOT NULL,
    duration_ms bigint  NOT NULL,
    title       text    NOT NULL,
    game_id     text,
    PRIMARY KEY (vod_id, position)
);
