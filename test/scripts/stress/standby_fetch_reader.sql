-- On the standby: read the row's version from the standby's own replayed
-- table, then through cache_fetch: the cache may never answer with an
-- older version than the standby's data already showed.  The standby is
-- read-only: a stale read is appended to the file :stalefile.
\set id random(1, 20)
SELECT version AS committed FROM stress_items WHERE id = :id \gset
SELECT (cache_fetch('stress:' || :id, 'SELECT version FROM stress_items WHERE id = ' || :id, 0) -> 0 ->> 'version')::int AS cached \gset
\if :cached < :committed
\shell echo standby_fetch :id :committed :cached >> :stalefile
\endif
