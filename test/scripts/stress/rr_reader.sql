-- Cache-aside from a REPEATABLE READ transaction: the value comes from a
-- snapshot taken before the miss.  Refused sets keep it from going stale;
-- the other readers would see it if one got through.
\set id random(1, 20)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT version AS snap FROM stress_items WHERE id = :id \gset
SELECT coalesce(cache_get('stress_aside:' || :id), '-1')::int AS cached \gset
\if :cached < 0
SELECT cache_set('stress_aside:' || :id, :snap::text, 0) AS stored \gset
\endif
COMMIT;
