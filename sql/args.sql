--
-- args: the argument rules of the contract, for every function.
--   NULL key, value or prefix -> NULL, nothing done; NULL ttl -> default;
--   empty key/prefix/pattern, key over 1024 bytes, negative ttl, invalid
--   pattern or setting -> ERROR, SQLSTATE class 22 or 42, message naming
--   the argument.
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

-- err(sql): runs sql and shows "SQLSTATE: message" of the error it raises
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- a key that must stay untouched by everything below that does nothing
SELECT cache_set('args:keep', 'kept', 0);

----------------------------------------------------------------------
-- NULL arguments: NULL result, nothing done
----------------------------------------------------------------------
SELECT cache_get(NULL) IS NULL AS get_null;
SELECT cache_set(NULL, 'v') IS NULL AS set_null_key;
SELECT cache_set('args:k', NULL) IS NULL AS set_null_value;
SELECT cache_set('args:k', NULL::text, 10) IS NULL AS set_null_text_value;
SELECT cache_set('args:k', NULL::jsonb, 10) IS NULL AS set_null_jsonb_value;
SELECT cache_set(NULL, '{"a": 1}'::jsonb) IS NULL AS set_null_key_jsonb;
-- NULL key or value wins over a bad ttl: nothing to store, nothing to check
SELECT cache_set(NULL, 'v', -1) IS NULL AS set_null_key_negative_ttl;
SELECT cache_set('args:k', NULL, -1) IS NULL AS set_null_value_negative_ttl;
SELECT cache_get('args:k') IS NULL AS nothing_stored;
SELECT cache_ttl('args:k') IS NULL AS nothing_stored_ttl;
SELECT cache_delete(NULL) IS NULL AS delete_null;
SELECT cache_invalidate_prefix(NULL) IS NULL AS prefix_null;
SELECT cache_invalidate_pattern(NULL) IS NULL AS pattern_null;
SELECT cache_ttl(NULL) IS NULL AS ttl_null;
SELECT count(*) AS rows_for_null_array FROM cache_get_many(NULL);
-- NULL elements of the array are ignored, like cache_get(NULL)
SELECT * FROM cache_get_many(ARRAY[NULL, 'args:keep', NULL]);
SELECT count(*) AS rows_for_all_null FROM cache_get_many(ARRAY[NULL, NULL]::text[]);
-- the NULL calls removed and counted nothing: the counters show only the
-- set of args:keep, the miss of args:k and two hits of args:keep
SELECT cache_get('args:keep');
SELECT hits, misses, sets, deletes, invalidations FROM pg_temp.stats();

----------------------------------------------------------------------
-- NULL ttl means cache_ext.default_ttl (300 s unless changed)
----------------------------------------------------------------------
SHOW cache_ext.default_ttl;
SELECT cache_set('args:dflt', 'v', NULL);
SELECT cache_ttl('args:dflt') BETWEEN 299 AND 300 AS ttl_is_default;
SELECT cache_set('args:dflt_json', '[1]'::jsonb, NULL);
SELECT cache_ttl('args:dflt_json') BETWEEN 299 AND 300 AS json_ttl_is_default;
SET cache_ext.default_ttl = 42;
SELECT cache_set('args:dflt', 'v', NULL);
SELECT cache_ttl('args:dflt') BETWEEN 41 AND 42 AS ttl_follows_setting;
SELECT cache_set('args:dflt', 'v');
SELECT cache_ttl('args:dflt') BETWEEN 41 AND 42 AS omitted_ttl_follows_setting;
SET cache_ext.default_ttl = '2min';
SELECT cache_set('args:dflt', 'v');
SELECT cache_ttl('args:dflt') BETWEEN 119 AND 120 AS ttl_with_unit;
-- a default of 0 means never expires, like an explicit 0
SET cache_ext.default_ttl = 0;
SELECT cache_set('args:dflt', 'v');
SELECT cache_ttl('args:dflt');
-- an explicit ttl is not affected by the setting
SET cache_ext.default_ttl = 42;
SELECT cache_set('args:dflt', 'v', 7);
SELECT cache_ttl('args:dflt') BETWEEN 6 AND 7 AS explicit_ttl_wins;
RESET cache_ext.default_ttl;

----------------------------------------------------------------------
-- empty key, prefix, pattern
----------------------------------------------------------------------
SELECT pg_temp.err($$SELECT cache_get('')$$);
SELECT pg_temp.err($$SELECT cache_set('', 'v')$$);
SELECT pg_temp.err($$SELECT cache_set('', '{}'::jsonb)$$);
SELECT pg_temp.err($$SELECT cache_delete('')$$);
SELECT pg_temp.err($$SELECT cache_ttl('')$$);
SELECT pg_temp.err($$SELECT cache_invalidate_prefix('')$$);
SELECT pg_temp.err($$SELECT cache_invalidate_pattern('')$$);
SELECT pg_temp.err($$SELECT * FROM cache_get_many(ARRAY['args:keep', ''])$$);

----------------------------------------------------------------------
-- key length: 1 to 1024 bytes (bytes, not characters)
----------------------------------------------------------------------
SELECT cache_set('k', 'one byte key');
SELECT cache_get('k');
SELECT cache_set(repeat('k', 1024), 'longest key');
SELECT cache_get(repeat('k', 1024));
SELECT cache_ttl(repeat('k', 1024)) > 0 AS ttl_of_longest_key;
SELECT key = repeat('k', 1024) AS same_key, value
FROM cache_get_many(ARRAY[repeat('k', 1024)]);
SELECT cache_delete(repeat('k', 1024));
-- 512 two-byte characters are 1024 bytes: accepted
SELECT cache_set(repeat('é', 512), 'longest multibyte key');
SELECT cache_get(repeat('é', 512));
SELECT cache_delete(repeat('é', 512));
-- one byte more is an error, whichever function gets it
SELECT pg_temp.err($$SELECT cache_get(repeat('k', 1025))$$);
SELECT pg_temp.err($$SELECT cache_set(repeat('k', 1025), 'v')$$);
SELECT pg_temp.err($$SELECT cache_set(repeat('k', 1025), '1'::jsonb)$$);
SELECT pg_temp.err($$SELECT cache_delete(repeat('k', 1025))$$);
SELECT pg_temp.err($$SELECT cache_ttl(repeat('k', 1025))$$);
SELECT pg_temp.err($$SELECT cache_invalidate_prefix(repeat('k', 1025))$$);
SELECT pg_temp.err($$SELECT * FROM cache_get_many(ARRAY['k', repeat('k', 1025)])$$);
SELECT pg_temp.err($$SELECT cache_set(repeat('é', 512) || 'x', 'v')$$);
-- nothing was stored under a truncated key
SELECT cache_get(repeat('k', 1024)) IS NULL AS not_truncated;

----------------------------------------------------------------------
-- ttl: negative is an error, 0 is "never expires"
----------------------------------------------------------------------
SELECT pg_temp.err($$SELECT cache_set('args:neg', 'v', -1)$$);
SELECT pg_temp.err($$SELECT cache_set('args:neg', '{}'::jsonb, -1)$$);
SELECT pg_temp.err($$SELECT cache_set('args:neg', 'v', -2147483648)$$);
SELECT cache_get('args:neg') IS NULL AS not_stored;
-- an error does not overwrite the previous value
SELECT pg_temp.err($$SELECT cache_set('args:keep', 'overwritten?', -5)$$);
SELECT cache_get('args:keep'), cache_ttl('args:keep');

----------------------------------------------------------------------
-- invalid patterns: an unclosed "[" or a trailing "\" (the same text as a
-- prefix is fine: every character of a prefix is literal)
----------------------------------------------------------------------
SELECT pg_temp.err($$SELECT cache_invalidate_pattern('a[b')$$);
SELECT pg_temp.err($$SELECT cache_invalidate_pattern('[')$$);
SELECT pg_temp.err($$SELECT cache_invalidate_pattern('args:[^')$$);
SELECT pg_temp.err($$SELECT cache_invalidate_pattern(E'args:\\')$$);
SELECT pg_temp.err($$SELECT cache_invalidate_pattern(E'\\')$$);
SELECT cache_invalidate_prefix('a[b');
SELECT cache_invalidate_prefix(E'args:\\');
-- an invalid pattern removes nothing
SELECT cache_get('args:keep');

----------------------------------------------------------------------
-- other argument errors
----------------------------------------------------------------------
SELECT pg_temp.err($$SELECT * FROM cache_get_many(ARRAY[['a', 'b'], ['c', 'd']])$$);

----------------------------------------------------------------------
-- invalid settings
----------------------------------------------------------------------
SELECT pg_temp.err($$SET cache_ext.default_ttl = -1$$);
SELECT pg_temp.err($$SET cache_ext.default_ttl = 'soon'$$);
SELECT pg_temp.err($$SET cache_ext.max_value_size = -1$$);
SELECT pg_temp.err($$SET cache_ext.backend = 'memcached'$$);
SELECT pg_temp.err($$SET cache_ext.on_error = 'panic'$$);
-- shmem_size needs a restart: PostgreSQL itself refuses (55P02)
SELECT pg_temp.err($$SET cache_ext.shmem_size = '128MB'$$);
SHOW cache_ext.default_ttl;

-- what was stored above, and nothing else
SELECT key, value FROM cache_get_many(ARRAY['args:keep', 'args:k', 'args:dflt', 'args:dflt_json', 'k', 'args:neg'])
ORDER BY key COLLATE "C";
