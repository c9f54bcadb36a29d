-- The hand-written cache-aside: get, on a miss read the row and set.
\set id random(1, 20)
SELECT coalesce(max(version), 0) AS committed FROM stress_done WHERE id = :id \gset
SELECT coalesce(cache_get('stress_aside:' || :id), '-1')::int AS cached \gset
\if :cached < 0
SELECT version AS fresh FROM stress_items WHERE id = :id \gset
SELECT cache_set('stress_aside:' || :id, :fresh::text, 0) AS stored \gset
\elif :cached < :committed
INSERT INTO stress_stale VALUES ('aside', :id, :committed, :cached);
\endif
