-- examples/demo.sql: the report that "make demo" prints (examples/demo.sh
-- runs it on a throwaway cluster, in an empty database, on the
-- shared-memory store).  Safe to run by hand in a scratch database too.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset footer off
SET client_min_messages = warning;
SET cache_ext.backend = 'shmem';
CREATE EXTENSION IF NOT EXISTS cache_ext;
SELECT cache_flush() \gset ignored_

\pset tuples_only on
\pset format unaligned
SELECT 'cache_ext demo: PostgreSQL ' || split_part(current_setting('server_version'), ' ', 1)
       || ', ' || current_setting('cache_ext.backend') || ' store ('
       || current_setting('cache_ext.shmem_size') || ')';

-- 1. Data ------------------------------------------------------------------

DROP TABLE IF EXISTS users;
CREATE TABLE users (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL
);
SELECT setseed(0.42) \gset ignored_
INSERT INTO users
SELECT i, f || ' ' || l, lower(f) || '.' || lower(l) || i || '@example.com', c,
       timestamptz '2020-01-01' + random() * interval '1500 days'
FROM (SELECT i,
             (ARRAY['Ada','Alan','Barbara','Claude','Donald','Edsger','Frances','Grace',
                    'Ivan','John','Ken','Leslie','Linus','Margaret','Niklaus','Radia',
                    'Robin','Shafi','Tim','Whitfield'])[1 + floor(random() * 20)::int] AS f,
             (ARRAY['Hopper','Turing','Liskov','Shannon','Knuth','Dijkstra','Allen',
                    'Sutherland','McCarthy','Thompson','Lamport','Torvalds','Hamilton',
                    'Wirth','Perlman','Milner','Goldwasser','Berners-Lee','Diffie',
                    'Ritchie'])[1 + floor(random() * 20)::int] AS l,
             (ARRAY['FR','DE','US','JP','BR','IN','NG','CA'])[1 + floor(random() * 8)::int] AS c
      FROM generate_series(1, 100000) AS i) s;
ANALYZE users;

SELECT '';
SELECT '1. users: ' || to_char(count(*), 'FM999,999') || ' rows (id, name, email, country, created_at)'
FROM users;

-- 2. Timing ----------------------------------------------------------------

-- The "list users" query: the first 1,000 users by name, as a JSON array.
CREATE FUNCTION pg_temp.demo_rows_query() RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT 'SELECT id, name, email, country, created_at FROM users ORDER BY name, id LIMIT 1000' $$;

-- Average milliseconds of one "list users" call over n calls, done:
--   'query'  every time (no cache),
--   'get'    through cache_get, and on a miss the query then cache_set
--            (the JSON text comes back as it was stored),
--   'fetch'  through cache_fetch(key, query, ttl) (one call; the result is
--            jsonb, so a hit parses the stored JSON),
-- and the JSON text of the last call.
CREATE FUNCTION pg_temp.demo_time(how text, n int, OUT avg_ms numeric, OUT json text)
LANGUAGE plpgsql AS $$
DECLARE
    q text := 'SELECT coalesce(json_agg(t), ''[]'')::jsonb::text FROM ('
              || pg_temp.demo_rows_query() || ') t';
    t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    FOR i IN 1 .. n LOOP
        IF how = 'query' THEN
            EXECUTE q INTO json;
        ELSIF how = 'fetch' THEN
            -- dynamic, so that this file also runs where cache_fetch is absent
            EXECUTE 'SELECT cache_fetch($1, $2, 600)::text'
                INTO json USING 'users:fetch:by_name', pg_temp.demo_rows_query();
        ELSE
            json := cache_get('users:list:by_name');
            IF json IS NULL THEN
                EXECUTE q INTO json;
                PERFORM cache_set('users:list:by_name', json, 600);
            END IF;
        END IF;
    END LOOP;
    avg_ms := round(extract(epoch FROM clock_timestamp() - t0) * 1000 / n, 3);
END $$;

SELECT cache_reset_stats() \gset ignored_
-- warm the table's pages first, so that "uncached" is the query, not the disk
SELECT length(json) AS ignored FROM pg_temp.demo_time('query', 2) \gset
SELECT avg_ms AS uncached_ms, json AS uncached_json FROM pg_temp.demo_time('query', 20) \gset
SELECT avg_ms AS miss_ms FROM pg_temp.demo_time('get', 1) \gset
SELECT avg_ms AS hit_ms, json AS cached_json FROM pg_temp.demo_time('get', 1000) \gset
SELECT to_regproc('cache_fetch') IS NOT NULL AS has_fetch \gset
\if :has_fetch
SELECT avg_ms AS fetch_miss_ms FROM pg_temp.demo_time('fetch', 1) \gset
SELECT avg_ms AS fetch_hit_ms, json AS fetch_json FROM pg_temp.demo_time('fetch', 1000) \gset
\endif

SELECT '';
SELECT '2. "list users": the first 1,000 users by name as JSON ('
       || pg_size_pretty(octet_length(:'cached_json')::bigint) || '), in ms per call';
SELECT format('   uncached: run the query every time             %9s  (average of 20 calls)', :'uncached_ms');
SELECT format('   cache_get miss, then the query and cache_set   %9s', :'miss_ms');
SELECT format('   cache_get hit                                  %9s  (average of 1,000)  %sx faster',
              :'hit_ms', round(:uncached_ms / greatest(:hit_ms, 0.001)));
\if :has_fetch
SELECT format('   cache_fetch(key, query, ttl) miss              %9s', :'fetch_miss_ms');
SELECT format('   cache_fetch hit (returns jsonb)                %9s  (average of 1,000)  %sx faster',
              :'fetch_hit_ms', round(:uncached_ms / greatest(:fetch_hit_ms, 0.001)));
SELECT format('   same JSON from the cache as from the query: %s',
              CASE WHEN :'cached_json'::jsonb = :'uncached_json'::jsonb
                    AND :'fetch_json'::jsonb = :'uncached_json'::jsonb THEN 'yes' ELSE 'NO' END);
\else
SELECT format('   same JSON from the cache as from the query: %s',
              CASE WHEN :'cached_json'::jsonb = :'uncached_json'::jsonb THEN 'yes' ELSE 'NO' END);
\endif

-- 3. Invalidation ----------------------------------------------------------

SELECT count(*) FILTER (WHERE cache_set('users:by_id:' || id, row_to_json(u)::text, 600)) AS ignored
FROM users u WHERE id <= 3 \gset
SELECT cache_set('orders:recent', '[]', 600) AS ignored \gset
SELECT '';
SELECT '3. writes invalidate by themselves: cache_attach() puts triggers on users';
SELECT cache_attach('users', 'users:list:', 'users:fetch:', 'users:by_id:{id}') AS ignored \gset
SELECT '   cache_attach(''users'', ''users:list:'', ''users:fetch:'', ''users:by_id:{id}'')';
SELECT '   cached keys now: users:list:by_name' || CASE WHEN :'has_fetch'::boolean THEN ', users:fetch:by_name' ELSE '' END
       || ', users:by_id:1..3, orders:recent';
UPDATE users SET name = name || ' (renamed)' WHERE id = 2;
SELECT '   UPDATE users SET name = ... WHERE id = 2   (no cache call in sight)';
SELECT format('   users:list:by_name: %s; users:by_id:2: %s; users:by_id:1: %s; orders:recent: %s',
              CASE WHEN cache_get('users:list:by_name') IS NULL THEN 'gone' ELSE 'STILL THERE' END,
              CASE WHEN cache_get('users:by_id:2') IS NULL THEN 'gone' ELSE 'STILL THERE' END,
              CASE WHEN cache_get('users:by_id:1') IS NULL THEN 'GONE' ELSE 'still cached' END,
              CASE WHEN cache_get('orders:recent') IS NULL THEN 'GONE' ELSE 'still cached' END);
SELECT format('   and by hand: cache_invalidate_prefix(''users:'') removed %s more keys',
              cache_invalidate_prefix('users:'));

-- 4. Statistics ------------------------------------------------------------

SELECT '';
SELECT '4. cache_stats()';
\pset tuples_only off
\pset format aligned
\x on
SELECT backend, hits, misses, sets, invalidations, evictions, entries,
       pg_size_pretty(bytes_used) AS bytes_used, pg_size_pretty(bytes_max) AS bytes_max,
       round(hit_ratio::numeric, 3) AS hit_ratio
FROM cache_stats();
