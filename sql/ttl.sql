--
-- ttl: expiry (one short sleep for the whole file), cache_ttl, TTL 0,
-- overwrite replaces the TTL, expired keys behave as absent everywhere.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
RESET client_min_messages;
SELECT cache_flush() >= 0 AS flushed;
-- The counters are server-wide and "make installcheck" may run on a server
-- in use: instead of resetting them, take a mark and read the differences.
CREATE TEMP TABLE stats_mark AS SELECT * FROM cache_stats();
CREATE FUNCTION pg_temp.stats_mark() RETURNS void LANGUAGE sql AS $$
  DELETE FROM stats_mark;
  INSERT INTO stats_mark SELECT * FROM cache_stats();
$$;
CREATE FUNCTION pg_temp.stats(OUT hits bigint, OUT misses bigint, OUT sets bigint,
  OUT deletes bigint, OUT invalidations bigint, OUT evictions bigint,
  OUT expirations bigint, OUT errors bigint, OUT hit_ratio double precision)
LANGUAGE sql AS $$
  SELECT s.hits - m.hits, s.misses - m.misses, s.sets - m.sets,
         s.deletes - m.deletes, s.invalidations - m.invalidations,
         s.evictions - m.evictions, s.expirations - m.expirations,
         s.errors - m.errors,
         CASE WHEN s.hits - m.hits + s.misses - m.misses > 0
              THEN (s.hits - m.hits)::float8 / (s.hits - m.hits + s.misses - m.misses)
              ELSE 0 END
  FROM cache_stats() s, stats_mark m;
$$;

-- cache_ttl: seconds left, -1 for never, NULL when absent
SELECT cache_set('t:60', 'v', 60);
SELECT cache_ttl('t:60') BETWEEN 59 AND 60 AS ttl_60;
SELECT cache_set('t:0', 'v', 0);
SELECT cache_ttl('t:0') AS ttl_0;
SELECT cache_ttl('t:absent') IS NULL AS ttl_absent;
SELECT cache_set('t:max', 'v', 2147483647);
SELECT cache_ttl('t:max') > 2147483000 AS ttl_max;

-- overwrite replaces the TTL, whatever it was
SELECT cache_set('t:60', 'v2', 0);
SELECT cache_ttl('t:60') AS now_never;
SELECT cache_set('t:60', 'v3', 5);
SELECT cache_ttl('t:60') BETWEEN 4 AND 5 AS now_5;
SELECT cache_set('t:60', 'v4');
SELECT cache_ttl('t:60') BETWEEN 299 AND 300 AS now_default;
SELECT cache_get('t:60');

-- keys that will expire during the sleep, and keys that must survive it
SELECT cache_set('t:short', 'gone soon', 1) AS short,
       cache_set('t:was_short', 'kept', 1) AND cache_set('t:was_short', 'kept', 0) AS was_short,
       cache_set('t:was_forever', 'gone soon', 0) AND cache_set('t:was_forever', 'gone soon', 1) AS was_forever,
       cache_set('t:json', '{"gone": "soon"}'::jsonb, 1) AS json,
       cache_set('t:exp:1', 'gone soon', 1) AS exp1,
       cache_set('t:exp:2', 'kept', 0) AS exp2,
       cache_set('t:exp:3', 'kept', 60) AS exp3;
SELECT cache_get('t:short') AS before_sleep, cache_ttl('t:short') BETWEEN 0 AND 1 AS ttl_1,
       cache_ttl('t:was_short') AS was_short_ttl,
       cache_ttl('t:was_forever') BETWEEN 0 AND 1 AS was_forever_ttl_1;
SELECT count(*) AS present_before FROM cache_get_many(ARRAY['t:short', 't:was_short',
       't:was_forever', 't:json', 't:exp:1', 't:exp:2', 't:exp:3']);

SELECT pg_sleep(1.5);

-- expired: a miss for every reader
SELECT cache_get('t:short') IS NULL AS short_expired,
       cache_get('t:was_forever') IS NULL AS was_forever_expired,
       cache_get('t:json') IS NULL AS json_expired,
       cache_ttl('t:short') IS NULL AS ttl_null_when_expired;
SELECT key, value FROM cache_get_many(ARRAY['t:short', 't:was_short', 't:was_forever',
       't:json', 't:exp:1', 't:exp:2', 't:exp:3'])
ORDER BY key COLLATE "C";
-- an expired key is not a live key: not deleted, not counted as invalidated
SELECT cache_delete('t:json') AS delete_expired;
SELECT cache_invalidate_prefix('t:exp:') AS live_removed_by_prefix;
SELECT cache_get('t:exp:2') IS NULL AND cache_get('t:exp:3') IS NULL AS prefix_removed_live;
-- an expired key can be set again, with a fresh TTL
SELECT cache_set('t:short', 'again', 30);
SELECT cache_get('t:short'), cache_ttl('t:short') BETWEEN 29 AND 30 AS ttl_30;
-- the survivors
SELECT cache_get('t:was_short') AS was_short, cache_ttl('t:was_short') AS was_short_ttl,
       cache_get('t:0') AS never, cache_get('t:60') AS t60;
-- hits and misses of this file (cache_ttl counts neither)
SELECT hits, misses FROM pg_temp.stats();
-- flush counts the live keys only: t:60, t:0, t:max, t:was_short, t:short
SELECT cache_flush();
