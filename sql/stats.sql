--
-- stats: cache_stats() columns and counters, cache_reset_stats().
-- Counters are server-wide, so this file asserts differences from a reset
-- it makes itself (it assumes no other session uses the cache meanwhile).
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
RESET client_min_messages;
SELECT cache_flush() >= 0 AS flushed;
SELECT cache_reset_stats();

-- the columns, in the order of the contract
SELECT p.parameter_name, p.data_type
FROM information_schema.parameters p
JOIN information_schema.routines r USING (specific_schema, specific_name)
WHERE r.routine_name = 'cache_stats' AND p.parameter_mode = 'OUT'
ORDER BY p.ordinal_position;

-- right after a reset: every counter is 0, the ratio is 0 (not NaN)
SELECT hits, misses, sets, deletes, invalidations, evictions, expirations, errors,
       hit_ratio
FROM cache_stats();
-- the row describes the store in use
SELECT backend = current_setting('cache_ext.backend') AS backend_is_current_store
FROM cache_stats();

-- sets: counted when stored
SELECT cache_set('st:1', 'one'), cache_set('st:2', 'two'), cache_set('st:3', '{}'::jsonb),
       cache_set('st:4', 'four', 0);
SET cache_ext.max_value_size = 4;
SELECT cache_set('st:big', 'five!') AS too_big;
RESET cache_ext.max_value_size;
SELECT sets FROM cache_stats();
-- an overwrite is a set
SELECT cache_set('st:1', 'uno');
SELECT sets FROM cache_stats();

-- hits and misses, by cache_get and by cache_get_many (one per non-NULL key)
SELECT cache_get('st:1') AS hit, cache_get('st:nope') IS NULL AS miss;
SELECT hits, misses, round(hit_ratio::numeric, 4) AS hit_ratio FROM cache_stats();
SELECT count(*) AS rows
FROM cache_get_many(ARRAY['st:1', 'st:2', NULL, 'st:absent', 'st:3', 'st:gone']);
SELECT hits, misses, round(hit_ratio::numeric, 4) AS hit_ratio FROM cache_stats();
-- cache_ttl is not a lookup of the value
SELECT cache_ttl('st:1') > 0 AS has_ttl, cache_ttl('st:nope') IS NULL AS no_ttl;
SELECT hits, misses FROM cache_stats();

-- deletes: counted when a live key was removed
SELECT cache_delete('st:2') AS deleted, cache_delete('st:2') AS again,
       cache_delete('st:never') AS never;
SELECT deletes FROM cache_stats();

-- invalidations: the number of keys removed by prefix, pattern and flush
SELECT cache_set('st:p:' || i, 'v') FROM generate_series(1, 5) i;
SELECT cache_invalidate_prefix('st:p:') AS by_prefix;
SELECT invalidations FROM cache_stats();
SELECT cache_invalidate_pattern('st:[13]') AS by_pattern;
SELECT invalidations FROM cache_stats();
SELECT cache_invalidate_pattern('st:[13]') AS nothing_left;
SELECT cache_flush() AS flushed;
SELECT invalidations, deletes FROM cache_stats();

-- the whole row after all that; no store error happened
SELECT hits, misses, sets, deletes, invalidations, errors,
       round(hit_ratio::numeric, 4) AS hit_ratio,
       evictions >= 0 AS evictions_ok, expirations >= 0 AS expirations_ok
FROM cache_stats();

-- size columns: not negative; the store is not over its bound (bytes_max
-- 0 or NULL: no limit, as Redis without maxmemory)
SELECT cache_set('st:size:' || i, repeat('x', 1000)) FROM generate_series(1, 3) i;
SELECT entries >= 3 AS entries_ok, bytes_used >= 3000 AS bytes_used_ok,
       bytes_max IS NULL OR bytes_max = 0 OR bytes_used <= bytes_max AS within_bound
FROM cache_stats();

-- reset: back to 0, and counting starts again from there
SELECT cache_reset_stats();
SELECT hits, misses, sets, deletes, invalidations, errors, hit_ratio FROM cache_stats();
SELECT cache_get('st:size:1') IS NOT NULL AS hit;
SELECT hits, misses, sets, hit_ratio FROM cache_stats();
SELECT cache_flush();
