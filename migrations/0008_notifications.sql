-- Intent: notifications and retention (issue 12). `notifications` is an outbox: an event is a row
-- written in the same transaction as the change that causes it, so a crash can neither lose it
-- nor announce a change that was rolled back. The state-derived events come from triggers on
-- `vods` and `kv` that fire on any change of `state`, whoever makes it (a stage, an operator
-- action, the runbook's UPDATE turned into a reprocess by 0007's trigger, hand-written SQL);
-- each VOD event has a dedupe key naming the VOD and its lifecycle generation, so it is published
-- once per generation (a reprocessed VOD is announced again). Periodic conditions (at_risk,
-- disk_low, chat_overdue, token_expiring, twitch_auth_failed) are inserted by the checker with a
-- `dedupe_key` naming the condition instance, so the same condition never notifies twice across
-- restarts and replicas. A sender claims due rows with a lease (`FOR UPDATE SKIP LOCKED`),
-- delivers to each target not yet in `delivered_to` (a digest of the target, never the URL: it
-- may hold a token) and records failures. `vods.state_changed_at` is when the VOD entered its
-- state (a trigger keeps it, whoever writes the state; `updated_at` moves with every discovery
-- pass): retention counts from it. `oauth_tokens.refresh_issued_at` is when the stored refresh
-- token was issued (its generation changed), for the token's age; `updated_at` also moves with
-- every access token.

CREATE TABLE notifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event           text        NOT NULL,
    dedupe_key      text UNIQUE,
    vod_id          text,
    payload         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state           text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    claim_until     timestamptz,
    delivered_to    text[]      NOT NULL DEFAULT '{}',
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    CONSTRAINT notifications_state_check CHECK (state IN (
        'pending', 'sending', 'sent', 'failed', 'skipped'))
);

-- What the sender may take next, oldest first.
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at, id)
    WHERE state IN ('pending', 'sending');

ALTER TABLE vods ADD COLUMN state_changed_at timestamptz;
UPDATE vods SET state_changed_at = COALESCE(uploaded_at, updated_at);
ALTER TABLE vods ALTER COLUMN state_changed_at SET DEFAULT now(),
                 ALTER COLUMN state_changed_at SET NOT NULL;

CREATE FUNCTION vods_state_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.state_changed_at := now();
    RETURN NEW;
END $$;

-- Not `UPDATE OF state`: the runbook's UPDATE names other columns and 0007's BEFORE trigger
-- (`vods_runbook_reprocess`, which fires first: same timing, earlier name) moves the state. A
-- BEFORE trigger's WHEN sees the row as the earlier triggers left it.
CREATE TRIGGER vods_state_changed BEFORE UPDATE ON vods FOR EACH ROW
    WHEN (NEW.state IS DISTINCT FROM OLD.state) EXECUTE FUNCTION vods_state_changed();

ALTER TABLE oauth_tokens ADD COLUMN refresh_issued_at timestamptz;
UPDATE oauth_tokens SET refresh_issued_at = updated_at;

CREATE FUNCTION oauth_tokens_issued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.generation IS DISTINCT FROM OLD.generation THEN
        NEW.refresh_issued_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER oauth_tokens_issued BEFORE INSERT OR UPDATE ON oauth_tokens
    FOR EACH ROW EXECUTE FUNCTION oauth_tokens_issued();

-- A VOD's facts every message shows.
CREATE FUNCTION notification_vod_payload(v vods) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'title', v.title, 'channel', v.channel, 'state', v.state,
        'youtube_url', v.youtube_url, 'expires_at', v.expires_at, 'url', v.url,
        'reason', COALESCE(v.processing_error, v.upload_error, v.download_error),
        'generation', v.generation)
$$;

CREATE FUNCTION notify_vod_state() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text;
BEGIN
    kind := CASE
        WHEN NEW.state = 'uploaded' THEN 'published'
        WHEN NEW.state = 'failed_permanent' THEN 'failed'
        WHEN NEW.state = 'gone' AND NEW.youtube_url IS NULL AND NEW.processed = 0
            THEN 'gone_unarchived'
    END;
    IF kind IS NOT NULL THEN
        INSERT INTO notifications (event, dedupe_key, vod_id, payload)
        VALUES (kind, kind || ':' || NEW.twitch_vod_id || ':' || NEW.generation, NEW.twitch_vod_id,
                notification_vod_payload(NEW))
        ON CONFLICT (dedupe_key) DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER vods_notify_insert AFTER INSERT ON vods
    FOR EACH ROW EXECUTE FUNCTION notify_vod_state();
CREATE TRIGGER vods_notify_state AFTER UPDATE ON vods FOR EACH ROW
    WHEN (NEW.state IS DISTINCT FROM OLD.state) EXECUTE FUNCTION notify_vod_state();

-- The breaker (runbook keys circuit_state/circuit_open_until) and the uploads pause
-- (uploads_paused_until/uploads_paused_reason): events on their transitions only, so an opening
-- notifies once however many workers write the same value again. Deleting circuit_state (the
-- runbook's reset) closes the circuit.
CREATE FUNCTION notify_kv() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_value text := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN OLD.value END;
    new_value text := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN NEW.value END;
    key text := CASE WHEN TG_OP = 'DELETE' THEN OLD.key ELSE NEW.key END;
    other jsonb;
BEGIN
    IF new_value IS NOT DISTINCT FROM old_value THEN
        RETURN NULL;
    END IF;
    IF key = 'circuit_state' THEN
        SELECT jsonb_object_agg(k.key, k.value) INTO other FROM kv k
        WHERE k.key IN ('circuit_failures', 'circuit_open_until');
        IF new_value = 'open' AND COALESCE(old_value, 'closed') = 'closed' THEN
            INSERT INTO notifications (event, payload)
            VALUES ('circuit_open', COALESCE(other, '{}'::jsonb));
        ELSIF COALESCE(new_value, 'closed') = 'closed' AND old_value IN ('open', 'half_open') THEN
            INSERT INTO notifications (event, payload) VALUES ('circuit_closed', '{}'::jsonb);
        END IF;
    ELSIF key = 'uploads_paused_until' AND new_value IS NOT NULL
          AND (SELECT k.value FROM kv k WHERE k.key = 'uploads_paused_reason') = 'quota' THEN
        INSERT INTO notifications (event, dedupe_key, payload)
        VALUES ('quota_exhausted', 'quota_exhausted:' || new_value,
                jsonb_build_object('resume_at', new_value))
        ON CONFLICT (dedupe_key) DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER kv_notify AFTER INSERT OR UPDATE ON kv
    FOR EACH ROW WHEN (NEW.key IN ('circuit_state', 'uploads_paused_until'))
    EXECUTE FUNCTION notify_kv();
CREATE TRIGGER kv_notify_delete AFTER DELETE ON kv
    FOR EACH ROW WHEN (OLD.key = 'circuit_state') EXECUTE FUNCTION notify_kv();

-- Google refused the refresh token: once per token generation.
CREATE FUNCTION notify_token_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
        INSERT INTO notifications (event, dedupe_key, payload)
        VALUES ('auth_needed',
                'auth_needed:' || NEW.provider || ':' || NEW.channel || ':' || NEW.generation,
                jsonb_build_object('provider', NEW.provider, 'reason', NEW.revoked_reason))
        ON CONFLICT (dedupe_key) DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER oauth_tokens_notify AFTER UPDATE OF revoked_at ON oauth_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_token_revoked();
