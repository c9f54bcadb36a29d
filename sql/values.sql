--
-- values: values (and keys) are binary-safe, any text round-trips exactly;
-- the size limit cache_ext.max_value_size; the jsonb overload; overwrite.
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

-- rt(key, value): set then get; true when the value came back byte for byte
CREATE FUNCTION pg_temp.rt(k text, v text) RETURNS boolean LANGUAGE sql AS $$
    SELECT cache_set(k, v, 60) AND cache_get(k) IS NOT DISTINCT FROM v
       AND octet_length(cache_get(k)) = octet_length(v)
$$;

----------------------------------------------------------------------
-- characters that break naive protocols or quoting
----------------------------------------------------------------------
SELECT pg_temp.rt('v:lf', E'line 1\nline 2\n') AS lf,
       pg_temp.rt('v:crlf', E'line 1\r\nline 2\r\n') AS crlf,
       pg_temp.rt('v:cr', E'\r') AS cr,
       pg_temp.rt('v:tab', E'a\tb\t') AS tab,
       pg_temp.rt('v:resp', E'$5\r\nhello\r\n*1\r\n') AS resp_like,
       pg_temp.rt('v:quotes', $q$it's "quoted" `and` \back\slashed\$q$) AS quotes,
       pg_temp.rt('v:spaces', '  leading and trailing  ') AS spaces,
       pg_temp.rt('v:percent', '%s %d %b %%') AS printf_like,
       pg_temp.rt('v:ctrl', E'\x01\x02\x07\x1b[0m\x7f') AS control_chars;
-- shown as stored
SELECT cache_get('v:crlf') = E'line 1\r\nline 2\r\n' AS crlf_exact,
       cache_get('v:lf') AS lf_value;

----------------------------------------------------------------------
-- unicode: 2-, 3- and 4-byte UTF-8 characters
----------------------------------------------------------------------
SELECT pg_temp.rt('v:utf8', 'é ß ĳ — € 中文 日本語 🙂 😀👍🏽 𝄞') AS utf8;
SELECT cache_get('v:utf8') AS value, octet_length(cache_get('v:utf8')) AS bytes,
       length(cache_get('v:utf8')) AS chars;
SELECT pg_temp.rt('v:emoji', '🙂') AS emoji, octet_length(cache_get('v:emoji')) AS bytes;
-- every character from U+0001 to U+2FFF and U+1F300 to U+1F6FF in one value
SELECT pg_temp.rt('v:all',
       (SELECT string_agg(chr(i), '') FROM generate_series(1, 12287) i)
       || (SELECT string_agg(chr(i), '') FROM generate_series(127744, 128767) i)) AS all_chars;

----------------------------------------------------------------------
-- the empty value is a value, not a miss
----------------------------------------------------------------------
SELECT cache_set('v:empty', '');
SELECT cache_get('v:empty') = '' AS empty_string, cache_get('v:empty') IS NULL AS is_null;
SELECT key, value = '' AS empty_value FROM cache_get_many(ARRAY['v:empty']);
SELECT cache_ttl('v:empty') > 0 AS has_ttl;
SELECT cache_delete('v:empty');

----------------------------------------------------------------------
-- keys are binary-safe too, and compared byte for byte
----------------------------------------------------------------------
SELECT pg_temp.rt(E'k:with space', '1') AND pg_temp.rt(E'k:new\nline', '2')
   AND pg_temp.rt(E'k:cr\r\nlf', '3') AND pg_temp.rt(E'k:tab\t', '4')
   AND pg_temp.rt('k:🙂', '5') AND pg_temp.rt($q$k:'"\$q$, '6')
   AND pg_temp.rt(E'k:\x01', '7') AS odd_keys_round_trip;
-- keys that differ in case, trailing space or normalization are distinct
SELECT cache_set('k:case', 'lower'), cache_set('K:CASE', 'upper'),
       cache_set('k:case ', 'trailing space'),
       cache_set(U&'k:\00e9', 'composed'), cache_set(U&'k:e\0301', 'decomposed');
SELECT cache_get('k:case') AS lower, cache_get('K:CASE') AS upper,
       cache_get('k:case ') AS trailing, cache_get(U&'k:\00e9') AS composed,
       cache_get(U&'k:e\0301') AS decomposed;
-- a key that is a prefix of another is not that key
SELECT cache_get('k:cas') IS NULL AS no_prefix_match;

----------------------------------------------------------------------
-- overwrite replaces the value, longer or shorter
----------------------------------------------------------------------
SELECT cache_set('v:ow', 'first');
SELECT cache_set('v:ow', repeat('long value ', 100));
SELECT octet_length(cache_get('v:ow')) AS len_after_longer;
SELECT cache_set('v:ow', 'x');
SELECT cache_get('v:ow');
SELECT cache_set('v:ow', '');
SELECT cache_get('v:ow') = '' AS empty_after_overwrite;

----------------------------------------------------------------------
-- jsonb overload: stores the JSON text (jsonb's normal form)
----------------------------------------------------------------------
SELECT cache_set('v:json', '{"b": 1, "a": [1, 2.50, null], "c": {"d": true}}'::jsonb);
SELECT cache_get('v:json');
SELECT cache_get('v:json')::jsonb = '{"a": [1, 2.50, null], "b": 1, "c": {"d": true}}'::jsonb AS same_json;
SELECT cache_set('v:json_str', to_jsonb(E'line\n"quoted" é 🙂'::text));
SELECT cache_get('v:json_str');
SELECT cache_get('v:json_str')::jsonb #>> '{}' = E'line\n"quoted" é 🙂' AS json_string_round_trip;
SELECT cache_set('v:json_scalar', '42'::jsonb), cache_set('v:json_null', 'null'::jsonb);
SELECT cache_get('v:json_scalar') AS scalar, cache_get('v:json_null') AS json_null,
       cache_get('v:json_null') IS NULL AS is_sql_null;
-- a text argument is stored as given, not normalized as JSON
SELECT cache_set('v:json_text', '{"b":1,   "a":2}');
SELECT cache_get('v:json_text');
SELECT cache_set('v:json_text', '{"b":1,   "a":2}'::text);
SELECT cache_get('v:json_text');

----------------------------------------------------------------------
-- cache_ext.max_value_size: a value of exactly that many bytes is stored,
-- one byte more is not (false), counted in bytes, not characters
----------------------------------------------------------------------
SHOW cache_ext.max_value_size;
SELECT cache_set('v:max', repeat('x', 1048576));
SELECT octet_length(cache_get('v:max')) AS stored_bytes,
       md5(cache_get('v:max')) = md5(repeat('x', 1048576)) AS same_bytes;
SELECT cache_set('v:max_plus_one', repeat('x', 1048577));
SELECT cache_get('v:max_plus_one') IS NULL AS not_stored;
SELECT cache_delete('v:max');

SET cache_ext.max_value_size = '1kB';
SHOW cache_ext.max_value_size;
SELECT cache_set('v:small', repeat('y', 1024)) AS bytes_1024,
       cache_set('v:small_plus_one', repeat('y', 1025)) AS bytes_1025;
SELECT octet_length(cache_get('v:small')) AS stored_bytes,
       cache_get('v:small_plus_one') IS NULL AS not_stored;
-- 512 two-byte characters fit in 1kB, 342 three-byte ones do not (1026 bytes)
SELECT cache_set('v:mb', repeat('é', 512)) AS two_byte_1024,
       cache_set('v:mb_over', repeat('€', 342)) AS three_byte_1026;
SELECT cache_get('v:mb') = repeat('é', 512) AS multibyte_stored,
       cache_get('v:mb_over') IS NULL AS multibyte_not_stored;
-- the jsonb overload is limited by its JSON text
SELECT cache_set('v:json_big', to_jsonb(repeat('z', 1022))) AS json_1024_bytes,
       cache_set('v:json_bigger', to_jsonb(repeat('z', 1023))) AS json_1025_bytes;
SELECT octet_length(cache_get('v:json_big')) AS json_stored_bytes,
       cache_get('v:json_bigger') IS NULL AS json_not_stored;
-- a value that is not stored is not counted as a set
SELECT pg_temp.stats_mark();
SELECT cache_set('v:too_big', repeat('y', 1025));
SELECT sets FROM pg_temp.stats();
-- 0 allows only the empty value
SET cache_ext.max_value_size = 0;
SELECT cache_set('v:zero', '') AS empty_fits, cache_set('v:zero_one', 'y') AS one_byte;
SELECT cache_get('v:zero') = '' AS empty_stored;
RESET cache_ext.max_value_size;
SHOW cache_ext.max_value_size;

-- a value too large to store does not leave the one it replaces behind
SELECT cache_set('v:replaced', 'old', 0) AS stored_old;
SET cache_ext.max_value_size = 4;
SELECT cache_set('v:replaced', 'too large') AS stored_new;
RESET cache_ext.max_value_size;
SELECT cache_get('v:replaced') IS NULL AS old_value_gone;
