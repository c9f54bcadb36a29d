--
-- fetch: cache_fetch(key, query, ttl): the argument rules, miss runs the
-- query and stores its rows as a JSON array of objects, hit returns the
-- cached JSON without running it, the query runs with the caller's rights.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
RESET client_min_messages;
SELECT cache_flush() >= 0 AS flushed;

CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TEMP TABLE fetch_users (id int PRIMARY KEY, name text);
INSERT INTO fetch_users VALUES (1, 'Ada'), (2, 'Grace');
CREATE SEQUENCE fetch_seq;

-- arguments
SELECT cache_fetch(NULL, 'SELECT 1 AS a') IS NULL AS null_key;
SELECT cache_fetch('f:nullq', NULL) IS NULL AS null_query;
SELECT cache_ttl('f:nullq') IS NULL AS nothing_stored;
SELECT pg_temp.err($$SELECT cache_fetch('', 'SELECT 1 AS a')$$);
SELECT pg_temp.err($$SELECT cache_fetch(repeat('k', 1025), 'SELECT 1 AS a')$$);
SELECT pg_temp.err($$SELECT cache_fetch('f:neg', 'SELECT 1 AS a', -1)$$);
SELECT cache_ttl('f:neg') IS NULL AS nothing_stored;

-- miss: runs the query, stores and returns its rows
SELECT cache_fetch('f:users', 'SELECT id, name FROM fetch_users ORDER BY id', 60);
SELECT cache_get('f:users')::jsonb = cache_fetch('f:users', 'SELECT 0') AS stored_as_returned;
SELECT cache_ttl('f:users') BETWEEN 59 AND 60 AS ttl_60;
-- hit: the cached JSON, the query is not run again (it would fail)
SELECT cache_fetch('f:users', 'SELECT 1/0');
-- after an invalidation the query runs again and sees the new rows
INSERT INTO fetch_users VALUES (3, 'Edsger');
SELECT cache_delete('f:users');
SELECT jsonb_array_length(cache_fetch('f:users', 'SELECT id, name FROM fetch_users ORDER BY id')) AS rows;
-- no rows: an empty array, cached like any other result
SELECT cache_fetch('f:none', 'SELECT id FROM fetch_users WHERE false');
SELECT cache_get('f:none')::jsonb AS cached;
-- NULL ttl is the default
SELECT cache_fetch('f:dflt', 'SELECT 1 AS a', NULL);
SELECT cache_ttl('f:dflt') BETWEEN 299 AND 300 AS default_ttl;
-- a failing query is an error and stores nothing
SELECT pg_temp.err($$SELECT cache_fetch('f:bad', 'SELECT no_such_column FROM fetch_users')$$);
SELECT cache_ttl('f:bad') IS NULL AS nothing_stored;

-- the query runs with the caller's privileges
CREATE ROLE regress_cache_fetcher;
SET ROLE regress_cache_fetcher;
SELECT pg_temp.err($$SELECT cache_fetch('f:denied', 'SELECT * FROM fetch_users')$$);
SELECT cache_ttl('f:denied') IS NULL AS nothing_stored;
RESET ROLE;
DROP ROLE regress_cache_fetcher;

-- a hit answers from a per-backend memo of parsed results only while the
-- store holds the same text: a change of the value (even of one byte at the
-- same length), a change through cache_set in a transaction and a rollback
-- are all seen at once
SELECT cache_fetch('f:memo', 'SELECT 1 AS a');
SELECT cache_fetch('f:memo', 'SELECT 1/0');
SELECT cache_set('f:memo', '[{"a": 2}]');
SELECT cache_fetch('f:memo', 'SELECT 1/0');
SELECT cache_fetch('f:memo', 'SELECT 1/0');
BEGIN;
INSERT INTO fetch_users VALUES (4, 'Barbara');
SELECT cache_set('f:memo', '[{"a": 3}]');
SELECT cache_fetch('f:memo', 'SELECT 1/0') AS pending;
ROLLBACK;
SELECT cache_fetch('f:memo', 'SELECT 1/0') AS after_rollback;
SELECT cache_delete('f:memo');
SELECT cache_fetch('f:memo', 'SELECT 4 AS a') AS after_delete;
-- text that is not JSON is still an error on every hit
SELECT cache_set('f:memo', '[{"a": 5}');
SELECT pg_temp.err($$SELECT cache_fetch('f:memo', 'SELECT 1/0')$$);
SELECT pg_temp.err($$SELECT cache_fetch('f:memo', 'SELECT 1/0')$$);
-- more keys than the memo holds, each hit twice, and a large page
SELECT count(*) FILTER (WHERE cache_fetch('f:m' || i, format('SELECT %s AS i', i)) = jsonb_build_array(jsonb_build_object('i', i))) AS misses_ok,
       count(*) FILTER (WHERE cache_fetch('f:m' || i, 'SELECT 1/0') = jsonb_build_array(jsonb_build_object('i', i))) AS hits_ok
FROM generate_series(1, 20) i;
SELECT count(*) FILTER (WHERE cache_fetch('f:m' || i, 'SELECT 1/0') = jsonb_build_array(jsonb_build_object('i', i))) AS hits_again_ok
FROM generate_series(1, 20) i;
SELECT jsonb_array_length(cache_fetch('f:big', 'SELECT i, repeat(''x'', 1000) AS pad FROM generate_series(1, 500) i')) AS big_miss,
       jsonb_array_length(cache_fetch('f:big', 'SELECT 1/0')) AS big_hit,
       cache_get('f:big')::jsonb = cache_fetch('f:big', 'SELECT 1/0') AS big_same;
-- a page too large for the memo is parsed on every hit
SET cache_ext.max_value_size = '8MB';
SELECT jsonb_array_length(cache_fetch('f:huge', 'SELECT i, repeat(''x'', 1000) AS pad FROM generate_series(1, 3000) i')) AS huge_miss,
       jsonb_array_length(cache_fetch('f:huge', 'SELECT 1/0')) AS huge_hit,
       cache_get('f:huge')::jsonb = cache_fetch('f:huge', 'SELECT 1/0') AS huge_same;
RESET cache_ext.max_value_size;

-- parameters: $1, $2, ... with the arguments' own types; NULL binds as NULL
SELECT cache_fetch('f:p:int', 'SELECT id, name FROM fetch_users WHERE id = $1', 60, 2);
SELECT cache_fetch('f:p:text', 'SELECT id FROM fetch_users WHERE name = $1 OR name = $2 ORDER BY id', 60, 'Ada'::text, 'Edsger');
SELECT cache_fetch('f:p:null', 'SELECT $1::int IS NULL AS is_null, $2 AS t, pg_typeof($3)::text AS ty', 60, NULL::int, 'x', 1.5);
SELECT cache_fetch('f:p:var', 'SELECT $1 + $2 AS sum', NULL, VARIADIC ARRAY[40, 2]);
SELECT cache_fetch('f:p:var0', 'SELECT 1 AS one', NULL, VARIADIC NULL::int[]);
-- a hit does not bind again: the cached rows
SELECT cache_fetch('f:p:int', 'SELECT id, name FROM fetch_users WHERE id = $1', 60, 3) AS hit;
SELECT pg_temp.err($$SELECT cache_fetch('f:p:bad', 'SELECT $1 + 1 AS a', 60, 'abc'::text)$$);
SELECT pg_temp.err($$SELECT cache_fetch('f:p:bad', 'SELECT $2 AS a', 60, 1)$$);
SELECT cache_ttl('f:p:bad') IS NULL AS nothing_stored;

-- one read-only SELECT only, in both forms
CREATE FUNCTION pg_temp.err_detail(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || ' / ' || d;
END $$;
CREATE FUNCTION pg_temp.fetch_writes() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM fetch_log;
    RETURN 1;
END $$;
CREATE TABLE fetch_log (x int);
INSERT INTO fetch_log VALUES (1);
SELECT pg_temp.err_detail($$SELECT cache_fetch('f:ro', 'SELECT 1 AS a; SELECT 2 AS b')$$);
SELECT pg_temp.err_detail($$SELECT cache_fetch('f:ro', 'SELECT 1 AS a; DELETE FROM fetch_log', 60, 1)$$);
SELECT pg_temp.err_detail($$SELECT cache_fetch('f:ro', 'DELETE FROM fetch_log RETURNING x')$$);
SELECT pg_temp.err_detail($$SELECT cache_fetch('f:ro', 'INSERT INTO fetch_log VALUES ($1) RETURNING x', 60, 2)$$);
SELECT pg_temp.err_detail($$SELECT cache_fetch('f:ro', 'WITH d AS (DELETE FROM fetch_log RETURNING x) SELECT * FROM d')$$);
SELECT pg_temp.err_detail($$SELECT cache_fetch('f:ro', 'SELECT x FROM fetch_log FOR UPDATE')$$);
SELECT pg_temp.err_detail($$SELECT cache_fetch('f:ro', 'SELECT * FROM (SELECT x FROM fetch_log FOR SHARE) s')$$);
SELECT pg_temp.err_detail($$SELECT cache_fetch('f:ro', 'SELECT x INTO fetch_copy FROM fetch_log')$$);
SELECT pg_temp.err_detail($$SELECT cache_fetch('f:ro', 'TRUNCATE fetch_log')$$);
SELECT pg_temp.err($$SELECT cache_fetch('f:ro', 'SELECT pg_temp.fetch_writes() AS w')$$);
SELECT pg_temp.err($$SELECT cache_fetch('f:ro', 'SELECT pg_temp.fetch_writes() AS w', 60, 1)$$);
SELECT pg_temp.err($$SELECT cache_fetch('f:ro', 'SELECT nextval(''fetch_seq'') AS n')$$);
SELECT x AS still_there FROM fetch_log;
SELECT cache_ttl('f:ro') IS NULL AS nothing_stored;
-- the caller's own transaction stays read-write
BEGIN;
SELECT cache_fetch('f:ro:txn', 'SELECT count(*) AS n FROM fetch_log');
INSERT INTO fetch_log VALUES (2);
SELECT current_setting('transaction_read_only') AS read_only;
ROLLBACK;
DROP TABLE fetch_log;

DROP TABLE fetch_users;
DROP SEQUENCE fetch_seq;
SELECT cache_flush() >= 0 AS flushed;
