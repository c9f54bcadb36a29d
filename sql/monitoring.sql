--
-- monitoring: the views cache_ext_stats (server-wide, one row per store),
-- cache_ext_stats_database (sizes as this database sees them),
-- cache_ext_attachments and cache_ext_fetch_locks, who may read them, and
-- the postgres_exporter query of docs/monitoring.md.  Counters are read
-- as differences from a mark, as in stats.sql.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
RESET client_min_messages;
SELECT cache_flush() >= 0 AS flushed;
CREATE TEMP TABLE mark AS SELECT * FROM cache_ext_stats;
CREATE FUNCTION pg_temp.since_mark() RETURNS TABLE (store text, counter text, delta bigint)
LANGUAGE sql AS $$
    SELECT s.store, c.key, c.value::bigint - (to_jsonb(m) ->> c.key)::bigint
    FROM cache_ext_stats s JOIN mark m USING (store),
         jsonb_each_text(to_jsonb(s) - 'store' - 'hit_ratio' - 'stats_reset'
                         - 'queue_length' - 'queue_delivered') c
    WHERE c.value::bigint <> (to_jsonb(m) ->> c.key)::bigint
    ORDER BY 1, 2
$$;

-- the columns
SELECT table_name, string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position)
FROM information_schema.columns
WHERE table_name IN ('cache_ext_stats', 'cache_ext_stats_database',
                     'cache_ext_attachments', 'cache_ext_fetch_locks')
GROUP BY table_name ORDER BY table_name;

-- one row per store; the queue is Redis's only; stats_reset is set
SELECT store, queue_length IS NOT NULL AS has_queue,
       queue_delivered IS NOT NULL AS has_delivered,
       stats_reset IS NOT NULL AND stats_reset <= now() AS stats_reset_ok,
       hits >= 0 AND misses >= 0 AND sets >= 0 AND errors >= 0 AS counters_ok
FROM cache_ext_stats ORDER BY store;

-- what the counters count, on the store in use
SELECT cache_get('mon:a') IS NULL AS miss, cache_set('mon:a', 'x'),
       cache_get('mon:a') AS hit;
SET cache_ext.max_value_size = 4;
SELECT cache_set('mon:big', 'too large') AS too_large;
RESET cache_ext.max_value_size;
SELECT store = current_setting('cache_ext.backend') AS this_store, counter, delta
FROM pg_temp.since_mark();
-- cache_stats() is unchanged: the same counters, the contract's columns only
SELECT s.hits = v.hits AND s.misses = v.misses AND s.sets = v.sets AS same_counters
FROM cache_stats() s JOIN cache_ext_stats v ON v.store = s.backend;
SELECT count(*) AS cache_stats_columns
FROM information_schema.parameters p
JOIN information_schema.routines r USING (specific_schema, specific_name)
WHERE r.routine_name = 'cache_stats' AND p.parameter_mode = 'OUT';

-- sizes, as this database sees them: one row per store
SELECT datname = current_database() AS this_db,
       entries >= 1 AS entries_ok, bytes_used > 0 AS bytes_used_ok
FROM cache_ext_stats_database
WHERE store = current_setting('cache_ext.backend');
SELECT count(*) AS rows FROM cache_ext_stats_database;

-- a Redis that does not answer: NULL sizes, no error even in "error" mode,
-- and the view's probe is not counted as a store error
SET cache_ext.redis_url = 'redis://127.0.0.1:1/0';
SET cache_ext.on_error = 'error';
CREATE TEMP TABLE mark_errors AS SELECT store, errors FROM cache_ext_stats;
SELECT store, entries IS NULL AS entries_null, bytes_used IS NULL AS bytes_used_null,
       bytes_max IS NULL AS bytes_max_null
FROM cache_ext_stats_database WHERE store = 'redis';
SELECT s.store, s.errors - m.errors AS new_errors
FROM cache_ext_stats s JOIN mark_errors m USING (store) ORDER BY 1;
RESET cache_ext.on_error;
RESET cache_ext.redis_url;

-- attachments: targets, write-through, the triggers, the stores reached
CREATE TABLE mon_users (user_id int PRIMARY KEY, name text);
SELECT cache_attach('mon_users', 'mon_users:all', 'mon_users:by_id:{user_id}');
CREATE TABLE mon_items (id int PRIMARY KEY);
SELECT cache_attach('mon_items');
CREATE TABLE mon_products (id int PRIMARY KEY, name text);
SELECT cache_attach_write_through('mon_products', 'mon_product:{id}', 60);
SELECT table_name, targets, write_through, write_through_ttl, triggers,
       stores = cache_ext_written_stores() AS stores_ok,
       cardinality(stores) >= 1 AS reaches_a_store
FROM cache_ext_attachments
WHERE table_name::text LIKE 'mon\_%' ORDER BY table_name::text COLLATE "C";
SELECT cache_detach('mon_items');
SELECT count(*) AS mon_items_attached FROM cache_ext_attachments
WHERE table_name = 'mon_items'::regclass;
DROP TABLE mon_users, mon_items, mon_products;

-- cache_fetch's key lock, seen from the query it runs: held, with its key
SELECT cache_fetch('mon:fetch',
  $$SELECT pid = pg_backend_pid() AS mine, datname = current_database() AS here,
           store = current_setting('cache_ext.backend') AS this_store, key, granted
    FROM cache_ext_fetch_locks$$);
SELECT count(*) AS locks_after FROM cache_ext_fetch_locks;

-- who may read them
SELECT v AS view, has_table_privilege('pg_monitor', v, 'SELECT') AS pg_monitor,
       has_table_privilege('public', v, 'SELECT') AS public
FROM unnest(ARRAY['cache_ext_stats', 'cache_ext_stats_database',
                  'cache_ext_attachments', 'cache_ext_fetch_locks']) v
ORDER BY 1;
SELECT has_function_privilege('pg_monitor', 'cache_ext_fetch_keys()', 'EXECUTE') AS pg_monitor,
       has_function_privilege('public', 'cache_ext_fetch_keys()', 'EXECUTE') AS public;

-- the postgres_exporter query of docs/monitoring.md, as written there
SELECT count(*) AS exporter_rows, count(DISTINCT store) AS stores,
       bool_and(stats_reset_seconds > 0) AS stats_reset_ok
FROM (
SELECT store, hits, misses, sets, deletes, invalidations, evictions, expirations,
       errors, sets_refused, sets_too_large, invalidations_failed, queue_pushed,
       coalesce(queue_length, 0) AS queue_length,
       coalesce(queue_delivered, 0) AS queue_delivered,
       extract(epoch FROM stats_reset) AS stats_reset_seconds
FROM cache_ext_stats
) AS exporter;

SELECT cache_flush() >= 0 AS flushed;
