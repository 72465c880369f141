-- Intent: none. A stand-in on the `archive` branch only, so its 0009 can be applied while the
-- real migration of this number is written on another branch. DELETE THIS FILE AT MERGE.
SELECT 1;
