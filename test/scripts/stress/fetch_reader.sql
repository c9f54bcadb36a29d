-- Read the last version whose commit has returned, then read through
-- cache_fetch: the cache may never answer with an older version.
\set id random(1, 20)
SELECT coalesce(max(version), 0) AS committed FROM stress_done WHERE id = :id \gset
SELECT (cache_fetch('stress:' || :id, 'SELECT version FROM stress_items WHERE id = ' || :id, 0) -> 0 ->> 'version')::int AS cached \gset
\if :cached < :committed
INSERT INTO stress_stale VALUES ('fetch', :id, :committed, :cached);
\endif
