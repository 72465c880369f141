-- Intent: `/status`, `/metrics` and `GET /vods` cost the same at 1,000 and at 1,000,000 VODs
-- (issue 15).
--
-- Counts by state are kept exact as states are written, in the writer's transaction, by triggers
-- on vods, so that every write path counts: the daemon's statements, the operator actions, the
-- runbook's SQL (its force-reprocess UPDATE, a DELETE by hand) and anything later. The triggers
-- only ever INSERT into `vod_state_deltas`: a counter row updated by every writer would be a
-- lock all of them queue on, and two transactions moving VODs in opposite directions
-- (queued -> downloading, downloading -> queued) could deadlock on a pair of them. Readers call
-- `vod_state_counts()`, which folds the deltas into `vod_state_counts` (one folder at a time, under
-- a transaction-level advisory lock, in one statement, so any snapshot sees base + deltas equal
-- to the rows) and returns the sums: a few dozen rows, whatever the size of the archive.
--
-- `GET /vods` pages by keyset in queue order (manual priority first, then the nearest expiry,
-- then the row id). The order is written as one ascending key, (-priority, expiry or infinity,
-- id), so that "after this row" is a single range of an index; each filter combination (none,
-- channel, state, both) has an index in that order. Those with state and with channel and state
-- make vods_state_idx and vods_channel_state_idx redundant (same leading columns), so they go.
-- `/status`'s videos YouTube rejected read a partial index instead of every part.

CREATE TABLE vod_state_counts (
    state text PRIMARY KEY,
    n     bigint NOT NULL
);

CREATE TABLE vod_state_deltas (
    state text   NOT NULL,
    delta bigint NOT NULL
);

CREATE FUNCTION vod_state_count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO vod_state_deltas (state, delta)
        SELECT r.state, count(*) FROM new_rows r GROUP BY r.state;
    ELSE
        INSERT INTO vod_state_deltas (state, delta)
        SELECT r.state, -count(*) FROM old_rows r GROUP BY r.state;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION vod_state_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO vod_state_deltas (state, delta) VALUES (OLD.state, -1), (NEW.state, 1);
    RETURN NULL;
END $$;

CREATE FUNCTION vod_state_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM vod_state_deltas;
    UPDATE vod_state_counts SET n = 0;
    RETURN NULL;
END $$;

-- Inserts and deletes per statement (a bulk load is one delta row per state); a state change per
-- row, and only when the state really changed. Not `UPDATE OF state`: 0007's BEFORE trigger
-- moves the state of the runbook's UPDATE, which does not name the column.
CREATE TRIGGER vods_count_insert AFTER INSERT ON vods REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vod_state_count_rows();
CREATE TRIGGER vods_count_delete AFTER DELETE ON vods REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vod_state_count_rows();
CREATE TRIGGER vods_count_state AFTER UPDATE ON vods FOR EACH ROW
    WHEN (NEW.state IS DISTINCT FROM OLD.state) EXECUTE FUNCTION vod_state_count_change();
CREATE TRIGGER vods_count_truncate AFTER TRUNCATE ON vods
    FOR EACH STATEMENT EXECUTE FUNCTION vod_state_count_truncate();

-- After the triggers (their lock on vods holds writers off until this commits): what is there now.
INSERT INTO vod_state_counts (state, n) SELECT state, count(*) FROM vods GROUP BY state;

-- The counts now. Folding is skipped while another reader folds; the sums are exact either way.
CREATE FUNCTION vod_state_counts() RETURNS TABLE (vod_state text, total bigint)
LANGUAGE plpgsql AS $$
BEGIN
    -- Two int4 keys (objsubid 2) never meet the bigint keys of migrations and the breaker.
    IF pg_try_advisory_xact_lock(1986948931, 15) THEN
        WITH moved AS (DELETE FROM vod_state_deltas d RETURNING d.state, d.delta)
        INSERT INTO vod_state_counts AS c (state, n)
        SELECT m.state, sum(m.delta) FROM moved m GROUP BY m.state ORDER BY m.state
        ON CONFLICT (state) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN QUERY
        SELECT t.state, sum(t.n)::bigint FROM (
            SELECT c.state, c.n FROM vod_state_counts c
            UNION ALL
            SELECT d.state, d.delta FROM vod_state_deltas d) t
        GROUP BY t.state;
END $$;

CREATE INDEX vods_list_idx
    ON vods ((-(priority::bigint)), (coalesce(expires_at, 'infinity'::timestamptz)), id);
CREATE INDEX vods_list_channel_idx
    ON vods (channel, (-(priority::bigint)), (coalesce(expires_at, 'infinity'::timestamptz)), id);
CREATE INDEX vods_list_state_idx
    ON vods (state, (-(priority::bigint)), (coalesce(expires_at, 'infinity'::timestamptz)), id);
CREATE INDEX vods_list_channel_state_idx
    ON vods (channel, state, (-(priority::bigint)),
             (coalesce(expires_at, 'infinity'::timestamptz)), id);
DROP INDEX vods_state_idx;
DROP INDEX vods_channel_state_idx;

CREATE INDEX youtube_uploads_rejected_idx ON youtube_uploads (updated_at)
    WHERE upload_status IN ('rejected', 'failed');
