-- bench/sql/setup.sql: the data every workload uses (run once per cluster).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
CREATE EXTENSION IF NOT EXISTS pgmemcache;

-- the 200-byte value every cache stores (no ':' in it: pgbench would take
-- ":word" for a variable)
CREATE OR REPLACE FUNCTION bench_v() RETURNS text IMMUTABLE LANGUAGE sql
AS $$ SELECT 'user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value '::text $$;

-- 100k users; the "list users" page is the 1000 newest as JSON (~110 kB)
DROP TABLE IF EXISTS users;
CREATE TABLE users (
    id         integer PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO users
SELECT i, 'User number ' || i, 'user' || i || '@example.com',
       timestamptz '2024-01-01 00:00:00+00' + ((i * 7919) % 100000) * interval '5 minutes'
FROM generate_series(1, 100000) i;

CREATE OR REPLACE FUNCTION bench_list_users() RETURNS text LANGUAGE sql STABLE
AS $$ SELECT json_agg(u)::text FROM (SELECT id, name, email, created_at FROM users ORDER BY created_at DESC, id LIMIT 1000) u $$;

-- the "just use Postgres" cache.  COLLATE "C" so that LIKE 'p:%' is an
-- index range scan: the strongest version of this alternative.
DROP TABLE IF EXISTS ucache;
CREATE UNLOGGED TABLE ucache (
    key        text COLLATE "C" PRIMARY KEY,
    value      text,
    expires_at timestamptz
);
INSERT INTO ucache SELECT 'k:' || i, bench_v(), now() + interval '1 hour'
FROM generate_series(0, 9999) i;
INSERT INTO ucache VALUES ('page/users/1', bench_list_users(), now() + interval '1 hour');

-- cache_ext, shared-memory store (also after each restart: it starts empty)
\ir fill_shmem.sql

-- pgmemcache / memcached
SELECT memcache_flush_all();
SELECT count(memcache_set('k:' || i, bench_v(), interval '1 hour')) FROM generate_series(0, 9999) i;
SELECT memcache_set('page/users/1', bench_list_users(), interval '1 hour');

-- timing helper for the in-query per-call cost: runs q (which returns one
-- bigint) and returns the elapsed milliseconds
CREATE OR REPLACE FUNCTION bench_ms(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    r  bigint;
BEGIN
    t0 := clock_timestamp();
    EXECUTE q INTO r;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END
$$;

-- the floor for the 110 kB page: the same text as a constant, so that a
-- prepared SELECT of it costs only what shipping 110 kB to the client costs
DO $$ BEGIN
    EXECUTE format('CREATE OR REPLACE FUNCTION bench_page() RETURNS text IMMUTABLE LANGUAGE sql AS %L',
                   'SELECT ' || quote_literal(bench_list_users()));
END $$;

-- the reader of the invalidation section, inside the server so that what
-- it sees is the store's doing, not the client's scheduling: back-to-back
-- gets of "q:" keys (from the store, or from the UNLOGGED table "inv") for
-- secs seconds.  One row (end time, latency; microseconds) per get that
-- took 50 us or more (a get takes about 1 us: keeping them all would be
-- millions of rows), then (0, number of gets).
CREATE OR REPLACE FUNCTION bench_reader(from_table boolean, secs float8, nkeys int)
RETURNS TABLE (end_us bigint, lat_us bigint) LANGUAGE plpgsql AS $$
DECLARE
    stop timestamptz := clock_timestamp() + secs * interval '1 second';
    t0   timestamptz;
    t1   timestamptz;
    i    bigint := 0;
    v    text;
BEGIN
    LOOP
        i := i + 1;
        t0 := clock_timestamp();
        IF from_table THEN
            SELECT value INTO v FROM inv WHERE key = 'q:' || (i % nkeys + 1);
        ELSE
            v := cache_get('q:' || (i % nkeys + 1));
        END IF;
        t1 := clock_timestamp();
        IF t1 - t0 >= interval '50 microseconds' THEN
            end_us := (extract(epoch FROM t1) * 1000000)::bigint;
            lat_us := (extract(epoch FROM t1 - t0) * 1000000)::bigint;
            RETURN NEXT;
        END IF;
        EXIT WHEN t1 >= stop;
    END LOOP;
    end_us := 0;
    lat_us := i;
    RETURN NEXT;
END
$$;

VACUUM ANALYZE;
