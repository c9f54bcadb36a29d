--
-- invalidate: cache_invalidate_prefix (every character literal) versus
-- cache_invalidate_pattern (Redis MATCH globs, byte-wise), the counts they
-- return, and cache_flush.
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

-- The same set of keys for every case below.  Each case is two statements:
-- load() sets them all again (an error if one is not stored), then prefix()
-- or pattern() runs one invalidation and shows its result and the keys it
-- removed.  They are separate transactions on purpose: an invalidation is
-- applied again when its transaction commits, so a set made after it in
-- the same transaction would not survive.  Presence is checked with
-- cache_ttl (NULL when absent), not cache_get, so that no miss is recorded
-- (a miss followed by an invalidation may make the next set return false).
CREATE TEMP TABLE inv_keys (k text PRIMARY KEY);
INSERT INTO inv_keys VALUES
  ('a'), ('ab'), ('abc'), ('abb'), ('ac'), ('ad'), ('aZ'), ('a-'), ('a-c'),
  ('a*'), ('a*1'), ('a?'), ('a?x'), ('a['), ('a[b'), ('a[1'), ('a]'), ('a^'),
  (E'a\\'), (E'a\\1'), (E'a\\b'), ('a%'), ('a_'), ('aé'), ('b'), ('ba'),
  ('xay'), ('abcabc'), (E'a\nb'), ('A');
CREATE FUNCTION pg_temp.load() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    SELECT count(*) FILTER (WHERE cache_set(k, 'v', 0)) INTO n FROM inv_keys;
    IF n <> (SELECT count(*) FROM inv_keys) THEN
        RAISE EXCEPTION 'only % keys stored', n;
    END IF;
    RETURN n;
END $$;
CREATE FUNCTION pg_temp.run(fn text, arg text, OUT result bigint, OUT removed text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT %s($1)', fn) INTO result USING arg;
    SELECT string_agg(replace(k, E'\n', '\n'), ' ' ORDER BY k COLLATE "C") INTO removed
    FROM inv_keys WHERE cache_ttl(k) IS NULL;
END $$;
CREATE FUNCTION pg_temp.prefix(p text, OUT result bigint, OUT removed text)
LANGUAGE sql AS $$ SELECT * FROM pg_temp.run('cache_invalidate_prefix', p) $$;
CREATE FUNCTION pg_temp.pattern(p text, OUT result bigint, OUT removed text)
LANGUAGE sql AS $$ SELECT * FROM pg_temp.run('cache_invalidate_pattern', p) $$;
SELECT count(*) AS keys FROM inv_keys;

----------------------------------------------------------------------
-- prefix: taken literally; "*", "?", "[", "\" (and LIKE's "%", "_") are
-- ordinary characters
----------------------------------------------------------------------
SELECT pg_temp.load() \gset
SELECT 'a*' AS prefix, * FROM pg_temp.prefix('a*');
SELECT pg_temp.load() \gset
SELECT 'a?' AS prefix, * FROM pg_temp.prefix('a?');
SELECT pg_temp.load() \gset
SELECT 'a[' AS prefix, * FROM pg_temp.prefix('a[');
SELECT pg_temp.load() \gset
SELECT 'a[b' AS prefix, * FROM pg_temp.prefix('a[b');
SELECT pg_temp.load() \gset
SELECT 'a]' AS prefix, * FROM pg_temp.prefix('a]');
SELECT pg_temp.load() \gset
SELECT E'a\\' AS prefix, * FROM pg_temp.prefix(E'a\\');
SELECT pg_temp.load() \gset
SELECT E'a\\1' AS prefix, * FROM pg_temp.prefix(E'a\\1');
SELECT pg_temp.load() \gset
SELECT 'a%' AS prefix, * FROM pg_temp.prefix('a%');
SELECT pg_temp.load() \gset
SELECT 'a_' AS prefix, * FROM pg_temp.prefix('a_');
SELECT pg_temp.load() \gset
SELECT 'a^' AS prefix, * FROM pg_temp.prefix('a^');
SELECT pg_temp.load() \gset
SELECT '*' AS prefix, * FROM pg_temp.prefix('*');
-- a whole key is its own prefix; case and bytes matter; no partial bytes
SELECT pg_temp.load() \gset
SELECT 'ab' AS prefix, * FROM pg_temp.prefix('ab');
SELECT pg_temp.load() \gset
SELECT 'abc' AS prefix, * FROM pg_temp.prefix('abc');
SELECT pg_temp.load() \gset
SELECT 'A' AS prefix, * FROM pg_temp.prefix('A');
SELECT pg_temp.load() \gset
SELECT 'aé' AS prefix, * FROM pg_temp.prefix('aé');
SELECT pg_temp.load() \gset
SELECT E'a\n' AS prefix, * FROM pg_temp.prefix(E'a\n');
SELECT pg_temp.load() \gset
SELECT 'abcd' AS prefix, * FROM pg_temp.prefix('abcd');
SELECT pg_temp.load() \gset
SELECT 'zzz' AS prefix, * FROM pg_temp.prefix('zzz');
SELECT pg_temp.load() \gset
SELECT 'a' AS prefix, * FROM pg_temp.prefix('a');

----------------------------------------------------------------------
-- pattern: Redis MATCH semantics.  "*" any run of bytes (also none),
-- "?" exactly one byte, "[abc]" one of, "[^a]" none of, "[a-c]" a range
-- (either way round), "\x" a literal x.  The whole key must match.
----------------------------------------------------------------------
SELECT pg_temp.load() \gset
SELECT '*' AS pattern, * FROM pg_temp.pattern('*');
SELECT pg_temp.load() \gset
SELECT 'a*' AS pattern, * FROM pg_temp.pattern('a*');
SELECT pg_temp.load() \gset
SELECT '*c' AS pattern, * FROM pg_temp.pattern('*c');
SELECT pg_temp.load() \gset
SELECT '*b*c*' AS pattern, * FROM pg_temp.pattern('*b*c*');
SELECT pg_temp.load() \gset
SELECT 'abc*abc' AS pattern, * FROM pg_temp.pattern('abc*abc');
SELECT pg_temp.load() \gset
SELECT '**b' AS pattern, * FROM pg_temp.pattern('**b');
SELECT pg_temp.load() \gset
SELECT 'ab' AS pattern, * FROM pg_temp.pattern('ab');
SELECT pg_temp.load() \gset
SELECT '?' AS pattern, * FROM pg_temp.pattern('?');
SELECT pg_temp.load() \gset
SELECT 'a?' AS pattern, * FROM pg_temp.pattern('a?');
SELECT pg_temp.load() \gset
SELECT 'a?c' AS pattern, * FROM pg_temp.pattern('a?c');
SELECT pg_temp.load() \gset
SELECT '??*' AS pattern, * FROM pg_temp.pattern('??*');
-- "?" is one byte, not one character: é is two bytes in UTF-8
SELECT pg_temp.load() \gset
SELECT 'a??' AS pattern, * FROM pg_temp.pattern('a??');
SELECT pg_temp.load() \gset
SELECT 'a[bc]' AS pattern, * FROM pg_temp.pattern('a[bc]');
SELECT pg_temp.load() \gset
SELECT 'a[^b]' AS pattern, * FROM pg_temp.pattern('a[^b]');
SELECT pg_temp.load() \gset
SELECT 'a[a-c]' AS pattern, * FROM pg_temp.pattern('a[a-c]');
SELECT pg_temp.load() \gset
SELECT 'a[c-a]' AS pattern, * FROM pg_temp.pattern('a[c-a]');
SELECT pg_temp.load() \gset
SELECT 'a[^a-c]' AS pattern, * FROM pg_temp.pattern('a[^a-c]');
SELECT pg_temp.load() \gset
SELECT 'a[a-c]c' AS pattern, * FROM pg_temp.pattern('a[a-c]c');
SELECT pg_temp.load() \gset
SELECT 'a[-]' AS pattern, * FROM pg_temp.pattern('a[-]');
SELECT pg_temp.load() \gset
SELECT 'a[]' AS pattern, * FROM pg_temp.pattern('a[]');
SELECT pg_temp.load() \gset
SELECT 'a[\]]' AS pattern, * FROM pg_temp.pattern('a[\]]');
SELECT pg_temp.load() \gset
SELECT 'a[[]*' AS pattern, * FROM pg_temp.pattern('a[[]*');
SELECT pg_temp.load() \gset
SELECT '[Aa]' AS pattern, * FROM pg_temp.pattern('[Aa]');
-- escapes: "\*", "\?", "\[", "\\" match those characters only
SELECT pg_temp.load() \gset
SELECT 'a\*' AS pattern, * FROM pg_temp.pattern('a\*');
SELECT pg_temp.load() \gset
SELECT 'a\**' AS pattern, * FROM pg_temp.pattern('a\**');
SELECT pg_temp.load() \gset
SELECT 'a\?' AS pattern, * FROM pg_temp.pattern('a\?');
SELECT pg_temp.load() \gset
SELECT 'a\[*' AS pattern, * FROM pg_temp.pattern('a\[*');
SELECT pg_temp.load() \gset
SELECT 'a\\' AS pattern, * FROM pg_temp.pattern('a\\');
SELECT pg_temp.load() \gset
SELECT 'a\\*' AS pattern, * FROM pg_temp.pattern('a\\*');
SELECT pg_temp.load() \gset
SELECT '\a\b' AS pattern, * FROM pg_temp.pattern('\a\b');
-- "%" and "_" are not wildcards
SELECT pg_temp.load() \gset
SELECT 'a%' AS pattern, * FROM pg_temp.pattern('a%');
SELECT pg_temp.load() \gset
SELECT 'a_' AS pattern, * FROM pg_temp.pattern('a_');
SELECT pg_temp.load() \gset
SELECT 'nothing*' AS pattern, * FROM pg_temp.pattern('nothing*');

----------------------------------------------------------------------
-- the counts are counted: invalidations add up what was removed
----------------------------------------------------------------------
SELECT cache_flush() >= 0 AS flushed;
SELECT pg_temp.stats_mark();
SELECT count(*) FILTER (WHERE cache_set('inv:' || k, 'v')) AS set FROM inv_keys;
SELECT cache_invalidate_prefix('inv:a*') AS by_prefix;
SELECT cache_invalidate_pattern('inv:a\[?') AS by_pattern;
SELECT cache_invalidate_pattern('inv:a\[?') AS again;
SELECT cache_flush() AS flushed_rest;
SELECT invalidations, sets FROM pg_temp.stats();

----------------------------------------------------------------------
-- invalidation touches only matching keys: values and TTLs of the others
-- are untouched
----------------------------------------------------------------------
SELECT cache_set('inv:keep', 'kept', 100), cache_set('inv:drop:1', 'x', 0);
SELECT cache_invalidate_prefix('inv:drop:');
SELECT cache_get('inv:keep'), cache_ttl('inv:keep') BETWEEN 99 AND 100 AS ttl_kept;
SELECT cache_flush();
SELECT cache_flush();

----------------------------------------------------------------------
-- ranges compare bytes as Redis does (as signed chars): a range ending in
-- a non-ASCII byte gives the same keys on both stores
----------------------------------------------------------------------
SELECT count(cache_set(k, 'v', 0)) FROM unnest('{inv:ab,inv:aA,inv:a!}'::text[]) k;
SELECT cache_invalidate_pattern('inv:a[a-é]') AS non_ascii_range;
SELECT k FROM unnest('{inv:ab,inv:aA,inv:a!}'::text[]) k WHERE cache_ttl(k) IS NOT NULL ORDER BY k;
SELECT cache_flush() >= 0 AS flushed;

----------------------------------------------------------------------
-- a transaction that invalidates, then sets, keeps its value: the repeat of
-- its invalidation at commit does not wipe what it set afterwards
----------------------------------------------------------------------
SELECT cache_set('inv:refresh', 'old', 0);
BEGIN;
SELECT cache_invalidate_prefix('inv:') AS invalidated;
SELECT cache_set('inv:refresh', 'new', 0) AS stored;
COMMIT;
SELECT cache_get('inv:refresh') AS after_commit;
SELECT cache_flush() >= 0 AS flushed;
