-- Intent: a placeholder for the lead's 0007 (lifecycle), only so that 0008 loads on the
-- notifications branch (versions must run 1..N). DELETE THIS FILE AT MERGE: the real 0007 replaces
-- it. Nothing in 0008 depends on 0007 (vods.generation is read through to_jsonb).
SELECT 1;
