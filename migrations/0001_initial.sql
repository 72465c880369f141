-- Intent: the runbook's tables. `vods` carries an explicit `state` (models.VodState) next to the
-- runbook's columns (twitch_vod_id, processed, processing_error, youtube_url, date,
-- download_state), so the runbook's SQL keeps working. `processed` is 0/1 as in the runbook
-- (`UPDATE vods SET processed=0 ...`). States are text with CHECK constraints rather than enum
-- types, so later migrations can change the set inside a transaction.

CREATE TABLE vods (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    twitch_vod_id    text        NOT NULL UNIQUE,
    channel          text        NOT NULL,
    stream_id        text,
    title            text        NOT NULL DEFAULT '',
    description      text        NOT NULL DEFAULT '',
    date             timestamptz,
    duration_s       integer,
    state            text        NOT NULL DEFAULT 'queued',
    download_state   text        NOT NULL DEFAULT 'pending',
    processed        smallint    NOT NULL DEFAULT 0,
    processing_error text,
    youtube_url      text,
    priority         integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT vods_state_check CHECK (state IN (
        'live', 'queued', 'waiting_for_disk', 'downloading', 'downloaded', 'waiting_for_auth',
        'uploading', 'uploaded', 'failed_retryable', 'failed_permanent', 'canceled', 'gone',
        'skipped_restricted', 'placeholder')),
    CONSTRAINT vods_download_state_check CHECK (download_state IN (
        'pending', 'waiting_for_disk', 'downloading', 'downloaded', 'failed_retryable',
        'failed_permanent', 'canceled', 'gone', 'skipped_restricted')),
    CONSTRAINT vods_processed_check CHECK (processed IN (0, 1))
);

CREATE INDEX vods_state_idx ON vods (state);
CREATE INDEX vods_channel_date_idx ON vods (channel, date DESC);

-- Small durable values: the runbook's moving averages (avg_download_ms, ...), the circuit
-- breaker (circuit_state, circuit_failures, circuit_open_until), last_process_run.
CREATE TABLE kv (
    key        text PRIMARY KEY,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- OAuth credentials per provider and channel ('' when not tied to a channel).
CREATE TABLE oauth_tokens (
    provider      text        NOT NULL,
    channel       text        NOT NULL DEFAULT '',
    access_token  text,
    refresh_token text,
    token_type    text,
    scopes        text,
    expires_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, channel)
);

-- Live chat, keyed by Twitch's message id so a replay after a reconnect is dropped.
CREATE TABLE chat_messages (
    msg_id        text PRIMARY KEY,
    vod_id        bigint REFERENCES vods (id) ON DELETE CASCADE,
    channel       text        NOT NULL,
    kind          text        NOT NULL DEFAULT 'PRIVMSG',
    user_id       text,
    username      text,
    display_name  text,
    message       text        NOT NULL DEFAULT '',
    sent_at       timestamptz NOT NULL,
    offset_ms     bigint,
    deleted       boolean     NOT NULL DEFAULT false,
    tags          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    received_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX chat_messages_vod_offset_idx ON chat_messages (vod_id, offset_ms);
CREATE INDEX chat_messages_channel_sent_idx ON chat_messages (channel, sent_at);
