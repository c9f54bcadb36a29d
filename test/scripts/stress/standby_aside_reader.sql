-- On the standby, the hand-written cache-aside: read the row's version
-- from the standby's own replayed table, then get; on a miss read the row
-- again and set (three statements, three snapshots).  A cached version
-- older than what the standby's data showed first is a stale read,
-- appended to the file :stalefile (the standby is read-only).
\set id random(1, 20)
SELECT version AS committed FROM stress_items WHERE id = :id \gset
SELECT coalesce(cache_get('stress_aside:' || :id), '-1')::int AS cached \gset
\if :cached < 0
SELECT version AS fresh FROM stress_items WHERE id = :id \gset
SELECT cache_set('stress_aside:' || :id, :fresh::text, 0) AS stored \gset
\elif :cached < :committed
\shell echo standby_aside :id :committed :cached >> :stalefile
\endif
