-- Chat leases (issue 14): which replica records which channel. See migrations/0013 and
-- vodarchiver/pipeline/chat_leases.py.

-- name: chat_leases_list
-- Every slot of these channels, with whether its lease still runs and for how long (the
-- database's clock: replicas' clocks are never compared).
SELECT channel, slot, owner, acquired_at, lease_until, lease_until > now() AS valid,
       extract(epoch FROM lease_until - now())::float8 AS remaining_s
FROM chat_leases WHERE channel = ANY(%(channels)s)
ORDER BY channel, slot;

-- name: chat_leases_renew
-- Extend every lease we hold on these channels; a channel missing from the answer was taken
-- over (or released) and its recorder must stop.
UPDATE chat_leases SET lease_until = now() + make_interval(secs => %(lease_s)s)
WHERE owner = %(owner)s AND channel = ANY(%(channels)s)
RETURNING channel;

-- name: chat_lease_claim
-- Take one slot: free, or its lease ran out. Two replicas racing for it: the second's conflict
-- re-reads the first's fresh row and takes nothing.
INSERT INTO chat_leases AS l (channel, slot, owner, lease_until)
VALUES (%(channel)s, %(slot)s, %(owner)s, now() + make_interval(secs => %(lease_s)s))
ON CONFLICT (channel, slot) DO UPDATE
    SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until, acquired_at = now()
    WHERE l.lease_until <= now()
RETURNING channel;

-- name: chat_leases_release
-- A clean stop (or the channel went offline): the next replica takes it at its next pass.
DELETE FROM chat_leases WHERE owner = %(owner)s AND channel = ANY(%(channels)s)
RETURNING channel;

-- name: chat_leases_release_previous
-- At start: the slots a killed predecessor on this host and DATA_DIR left (same prefix, another
-- process), so a restart records again at once instead of waiting out its own old lease.
DELETE FROM chat_leases WHERE starts_with(owner, %(prefix)s) AND NOT starts_with(owner, %(process)s)
RETURNING channel, owner;
