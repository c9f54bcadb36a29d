-- Cache-aside in one READ COMMITTED statement: its snapshot is taken when
-- the statement starts, before its miss; what it stores comes from that
-- snapshot.  A set refused as possibly stale stores nothing.
\set id random(1, 20)
SELECT coalesce(max(version), 0) AS committed FROM stress_done WHERE id = :id \gset
SELECT coalesce(cache_get('stress_aside:' || :id), '-1')::int AS cached \gset
\if :cached < 0
SELECT cache_set('stress_aside:' || :id, (SELECT version FROM stress_items WHERE id = :id)::text, 0)
  WHERE cache_get('stress_aside:' || :id) IS NULL;
\elif :cached < :committed
INSERT INTO stress_stale VALUES ('rc', :id, :committed, :cached);
\endif
