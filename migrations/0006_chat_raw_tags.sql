-- Intent: chat ingest at issue 6's goal of 20,000 messages/s on two cores. A message's tags are
-- kept as Twitch sent them (the IRCv3 tag text, still escaped) in `raw_tags`, rather than as a
-- jsonb object built and parsed for every message: PostgreSQL's jsonb input was about a third of
-- the database's cost per message, and the Python side spent as much again serialising the JSON.
-- Readers parse `raw_tags` (the export does); rows written before this migration keep their
-- `tags` object and have no `raw_tags`, and new rows leave `tags` at its default.
ALTER TABLE chat_messages ADD COLUMN raw_tags text;
