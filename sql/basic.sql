--
-- basic: install the extension and use every function once, the way the
-- README shows it.  Runs first; later files only need the extension.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS cache_ext;
CREATE EXTENSION cache_ext;
RESET client_min_messages;

-- the functions of the contract, with their argument and result types
SELECT p.oid::regprocedure AS function, p.prorettype::regtype AS returns,
       p.proretset AS setof, p.proisstrict AS strict
FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
WHERE e.extname = 'cache_ext' AND p.proname IN
  ('cache_get', 'cache_get_many', 'cache_set', 'cache_delete',
   'cache_invalidate_prefix', 'cache_invalidate_pattern', 'cache_ttl',
   'cache_flush', 'cache_stats', 'cache_reset_stats')
ORDER BY p.proname COLLATE "C", p.oid::regprocedure::text COLLATE "C";

-- the settings: built-in defaults, units and who may change them (boot_val,
-- not setting: the suite also runs with cache_ext.backend and redis_url set)
SELECT name, boot_val, unit, context
FROM pg_settings
WHERE name IN ('cache_ext.backend', 'cache_ext.default_ttl', 'cache_ext.shmem_size',
               'cache_ext.max_value_size', 'cache_ext.redis_url',
               'cache_ext.redis_connect_timeout', 'cache_ext.redis_command_timeout',
               'cache_ext.key_prefix', 'cache_ext.on_error')
ORDER BY name COLLATE "C";

-- start from an empty namespace
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

-- miss, set, hit
SELECT cache_get('basic:greeting') IS NULL AS miss;
SELECT cache_set('basic:greeting', 'hello');
SELECT cache_get('basic:greeting');
SELECT cache_ttl('basic:greeting') BETWEEN 299 AND 300 AS default_ttl_300;

-- explicit TTL, and 0 for never
SELECT cache_set('basic:ten', 'ten seconds', 10);
SELECT cache_ttl('basic:ten') BETWEEN 9 AND 10 AS ttl_10;
SELECT cache_set('basic:forever', 'never expires', 0);
SELECT cache_ttl('basic:forever');
SELECT cache_ttl('basic:absent') IS NULL AS absent_ttl_is_null;

-- the jsonb overload stores the JSON text
SELECT cache_set('basic:json', '{"id": 1, "name": "Ada"}'::jsonb, 60);
SELECT cache_get('basic:json');
SELECT cache_get('basic:json')::jsonb ->> 'name' AS name;

-- several keys at once: one row per present key
SELECT * FROM cache_get_many(ARRAY['basic:greeting', 'basic:absent', 'basic:ten'])
ORDER BY key COLLATE "C";

-- delete: true when a live key was removed, then false
SELECT cache_delete('basic:greeting');
SELECT cache_delete('basic:greeting');
SELECT cache_get('basic:greeting') IS NULL AS gone;

-- bulk invalidation returns how many keys went
SELECT cache_set('basic:user:1', 'a'), cache_set('basic:user:2', 'b'),
       cache_set('basic:item:1', 'c');
SELECT cache_invalidate_prefix('basic:user:');
SELECT cache_invalidate_pattern('basic:item:*');
SELECT * FROM cache_get_many(ARRAY['basic:user:1', 'basic:user:2', 'basic:item:1']);

-- statistics: one row, the columns of the contract (bytes_max 0 or NULL:
-- no limit, as Redis without maxmemory)
SELECT backend = current_setting('cache_ext.backend') AS backend_is_current_store,
       hits >= 0 AND misses >= 0 AND sets >= 0 AND deletes >= 0 AND
       invalidations >= 0 AND errors >= 0 AS counters_ok,
       evictions >= 0 AS evictions_ok, expirations >= 0 AS expirations_ok,
       entries >= 0 AS entries_ok, bytes_used >= 0 AS bytes_used_ok,
       bytes_max IS NULL OR bytes_max = 0 OR bytes_max >= bytes_used AS bytes_max_ok,
       hit_ratio BETWEEN 0 AND 1 AS hit_ratio_ok
FROM cache_stats();
SELECT count(*) AS rows FROM cache_stats();
-- what this file counted
SELECT hits, misses, sets, deletes, invalidations, errors,
       round(hit_ratio::numeric, 4) AS hit_ratio
FROM pg_temp.stats();
SELECT pg_temp.stats_mark();
SELECT hits, misses, sets, deletes, invalidations, errors, hit_ratio FROM pg_temp.stats();

-- flush removes what is left (basic:ten, basic:forever, basic:json)
SELECT cache_flush();
SELECT cache_flush();
SELECT count(*) AS left_after_flush
FROM cache_get_many(ARRAY['basic:ten', 'basic:forever', 'basic:json']);
