--
-- stats: cache_stats() columns and counters.  Counters are server-wide,
-- so this file asserts differences from a mark it takes (it assumes no
-- other session uses the cache meanwhile); it never resets them, for
-- "make installcheck" on a server in use.  cache_reset_stats() is tested
-- by test/t/160_installcheck.pl.
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

-- the columns, in the order of the contract
SELECT p.parameter_name, p.data_type
FROM information_schema.parameters p
JOIN information_schema.routines r USING (specific_schema, specific_name)
WHERE r.routine_name = 'cache_stats' AND p.parameter_mode = 'OUT'
ORDER BY p.ordinal_position;

-- right after the mark: every counter is 0, the ratio is 0 (not NaN)
SELECT hits, misses, sets, deletes, invalidations, evictions, expirations, errors,
       hit_ratio
FROM pg_temp.stats();
-- the row describes the store in use
SELECT backend = current_setting('cache_ext.backend') AS backend_is_current_store
FROM cache_stats();

-- sets: counted when stored
SELECT cache_set('st:1', 'one'), cache_set('st:2', 'two'), cache_set('st:3', '{}'::jsonb),
       cache_set('st:4', 'four', 0);
SET cache_ext.max_value_size = 4;
SELECT cache_set('st:big', 'five!') AS too_big;
RESET cache_ext.max_value_size;
SELECT sets FROM pg_temp.stats();
-- an overwrite is a set
SELECT cache_set('st:1', 'uno');
SELECT sets FROM pg_temp.stats();

-- hits and misses, by cache_get and by cache_get_many (one per non-NULL key)
SELECT cache_get('st:1') AS hit, cache_get('st:nope') IS NULL AS miss;
SELECT hits, misses, round(hit_ratio::numeric, 4) AS hit_ratio FROM pg_temp.stats();
SELECT count(*) AS rows
FROM cache_get_many(ARRAY['st:1', 'st:2', NULL, 'st:absent', 'st:3', 'st:gone']);
SELECT hits, misses, round(hit_ratio::numeric, 4) AS hit_ratio FROM pg_temp.stats();
-- cache_ttl is not a lookup of the value
SELECT cache_ttl('st:1') > 0 AS has_ttl, cache_ttl('st:nope') IS NULL AS no_ttl;
SELECT hits, misses FROM pg_temp.stats();

-- deletes: counted when a live key was removed
SELECT cache_delete('st:2') AS deleted, cache_delete('st:2') AS again,
       cache_delete('st:never') AS never;
SELECT deletes FROM pg_temp.stats();

-- invalidations: the number of keys removed by prefix, pattern and flush
SELECT cache_set('st:p:' || i, 'v') FROM generate_series(1, 5) i;
SELECT cache_invalidate_prefix('st:p:') AS by_prefix;
SELECT invalidations FROM pg_temp.stats();
SELECT cache_invalidate_pattern('st:[13]') AS by_pattern;
SELECT invalidations FROM pg_temp.stats();
SELECT cache_invalidate_pattern('st:[13]') AS nothing_left;
SELECT cache_flush() AS flushed;
SELECT invalidations, deletes FROM pg_temp.stats();

-- the whole row after all that; no store error happened
SELECT hits, misses, sets, deletes, invalidations, errors,
       round(hit_ratio::numeric, 4) AS hit_ratio,
       evictions >= 0 AS evictions_ok, expirations >= 0 AS expirations_ok
FROM pg_temp.stats();

-- size columns: not negative; the store is not over its bound (bytes_max
-- 0 or NULL: no limit, as Redis without maxmemory)
SELECT cache_set('st:size:' || i, repeat('x', 1000)) FROM generate_series(1, 3) i;
SELECT entries >= 3 AS entries_ok, bytes_used >= 3000 AS bytes_used_ok,
       bytes_max IS NULL OR bytes_max = 0 OR bytes_used <= bytes_max AS within_bound
FROM cache_stats();

-- a new mark: back to 0, and counting starts again from there
SELECT pg_temp.stats_mark();
SELECT hits, misses, sets, deletes, invalidations, errors, hit_ratio FROM pg_temp.stats();
SELECT cache_get('st:size:1') IS NOT NULL AS hit;
SELECT hits, misses, sets, hit_ratio FROM pg_temp.stats();
SELECT cache_flush();
