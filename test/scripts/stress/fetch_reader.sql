-- Read the committed version first, then through cache_fetch: the cache may
-- never answer with a version older than one already committed.
\set id random(1, 20)
SELECT version AS committed FROM stress_items WHERE id = :id \gset
SELECT (cache_fetch('stress:' || :id, 'SELECT version FROM stress_items WHERE id = ' || :id, 0) -> 0 ->> 'version')::int AS cached \gset
\if :cached < :committed
INSERT INTO stress_stale VALUES ('fetch', :id, :committed, :cached);
\endif
