-- Intent: chat across replicas (issue 14). Replicas on one database no longer each open their own
-- connection to every channel: a replica records a channel's live chat only while it holds one of
-- the channel's lease slots (0 .. CHAT_REDUNDANCY-1). A slot is a row naming its owner (the
-- process's identity `<host>:<DATA_DIR>:<pid>:<start>` plus `:chat:<suffix>`, as the stages'
-- claims) and renewed every third of CHAT_LEASE; a lease that ran out (its replica died, or lost
-- its database) is taken by the next replica that wants the channel, and a clean stop deletes it.
-- The rows are what `/status` and the console show as who records which channel.

CREATE TABLE chat_leases (
    channel     text        NOT NULL,
    slot        smallint    NOT NULL CHECK (slot >= 0),
    owner       text        NOT NULL,
    lease_until timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, slot)
);
