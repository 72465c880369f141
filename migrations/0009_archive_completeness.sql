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

-- YouTube extras of each published part (thumbnail, chat captions): done at most once, recorded
-- here before the stage moves on, and checked before any call. `pending` work waits for quota
-- (never the units the next video upload needs) and is retried; `refused` is not asked again
-- (a channel that may not set thumbnails, a token without the captions scope); `skipped` had
-- nothing to send (no thumbnail from Twitch and the file gone, no chat in the part).
CREATE TABLE youtube_extras (
    vod_id          bigint      NOT NULL,
    part            integer     NOT NULL,
    kind            text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending',
    detail          text,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    claim_until     timestamptz,
    done_at         timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vod_id, part, kind),
    FOREIGN KEY (vod_id, part) REFERENCES youtube_uploads (vod_id, part) ON DELETE CASCADE,
    CONSTRAINT youtube_extras_kind_check CHECK (kind IN ('thumbnail', 'captions')),
    CONSTRAINT youtube_extras_state_check CHECK (state IN ('pending', 'done', 'refused', 'skipped'))
);

CREATE INDEX youtube_extras_due_idx ON youtube_extras (next_attempt_at) WHERE state = 'pending';
