/* cache_ext--0.1--0.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cache_ext UPDATE TO '0.2'" to load this file. \quit

-- ---- cache_stats(): invalidations_queued and invalidations_delivered ----
--
-- The Redis invalidations that wait in shared memory to be delivered, and
-- how many the worker has delivered since the server started.  An OUT
-- column cannot be added in place.

DROP FUNCTION cache_stats();

CREATE FUNCTION cache_stats(
    OUT backend text,
    OUT hits bigint,
    OUT misses bigint,
    OUT sets bigint,
    OUT deletes bigint,
    OUT invalidations bigint,
    OUT evictions bigint,
    OUT expirations bigint,
    OUT errors bigint,
    OUT entries bigint,
    OUT bytes_used bigint,
    OUT bytes_max bigint,
    OUT hit_ratio double precision,
    OUT invalidations_queued bigint,
    OUT invalidations_delivered bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'sql_cache_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- ---- triggers: partitions and schema changes (src/trigger_ddl.c) ----
--
-- cache_attach() now gives each trigger only the targets it is for:
-- cache_invalidate_stmt (prefixes, per statement), cache_invalidate_replica
-- (the same per row, ENABLE REPLICA: logical replication's apply worker
-- fires row triggers only), cache_invalidate_row (templates, per row; on a
-- partitioned table every target, so that the partitions' clones have
-- them) and cache_invalidate_truncate (every target).  All of them, and
-- the write-through triggers, are ENABLE ALWAYS.

-- AFTER TRUNCATE on each partition of an attached partitioned table:
-- invalidates what a TRUNCATE of its ancestors would.
CREATE FUNCTION cache_invalidate_partition()
RETURNS trigger
AS 'MODULE_PATHNAME', 'sql_cache_invalidate_partition'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Partitions created, attached or detached after cache_attach(), and
-- DROP COLUMN / RENAME COLUMN of a column that a key template names.
CREATE FUNCTION cache_ddl_command_end()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'sql_cache_ddl_command_end'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE EVENT TRIGGER cache_ext_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE FOREIGN TABLE',
                 'ALTER TABLE', 'ALTER FOREIGN TABLE')
    EXECUTE FUNCTION cache_ddl_command_end();
-- a migration run with session_replication_role = replica is checked too
ALTER EVENT TRIGGER cache_ext_ddl ENABLE ALWAYS;

-- DROP TABLE of a partition of an attached partitioned table, or of an
-- attached table: its rows go, as with TRUNCATE.
CREATE FUNCTION cache_ddl_command_start()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'sql_cache_ddl_command_start'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE EVENT TRIGGER cache_ext_drop ON ddl_command_start
    WHEN TAG IN ('DROP TABLE', 'DROP FOREIGN TABLE')
    EXECUTE FUNCTION cache_ddl_command_start();
ALTER EVENT TRIGGER cache_ext_drop ENABLE ALWAYS;

-- ---- the triggers of 0.1, in the layout of 0.2 ----
--
-- 0.1 gave cache_invalidate_stmt and cache_invalidate_row the same
-- arguments (every target); attaching again with them makes the new
-- layout.  Write-through is attached again to make it ENABLE ALWAYS and to
-- give partitions their TRUNCATE trigger.  A table whose triggers cannot
-- be attached again (a template that names a column renamed since, which
-- 0.1 did not prevent) keeps them as they are, with a WARNING.

DO $$
DECLARE
    t record;
    args text[];
    rest bytea;
    n integer;
BEGIN
    FOR t IN
        SELECT DISTINCT ON (tg.tgrelid, tg.tgfoid)
               tg.tgrelid, tg.tgfoid, tg.tgnargs, tg.tgargs
        FROM pg_catalog.pg_trigger tg
        WHERE tg.tgparentid = 0
          AND ((tg.tgname IN ('cache_invalidate_stmt', 'cache_invalidate_row')
                AND tg.tgfoid = '@extschema@.cache_invalidate()'::pg_catalog.regprocedure)
            OR (tg.tgname = 'cache_write_through'
                AND tg.tgfoid = '@extschema@.cache_write_through()'::pg_catalog.regprocedure))
        -- prefer cache_invalidate_stmt, which 0.1 made for every attach
        ORDER BY tg.tgrelid, tg.tgfoid, tg.tgname DESC
    LOOP
        -- tgargs holds each argument NUL-terminated, in the database encoding
        args := '{}';
        rest := t.tgargs;
        FOR i IN 1 .. t.tgnargs LOOP
            n := pg_catalog.position(rest, pg_catalog.decode('00', 'hex'));
            args := args || pg_catalog.convert_from(pg_catalog.substr(rest, 1, n - 1),
                                                    pg_catalog.getdatabaseencoding());
            rest := pg_catalog.substr(rest, n + 1);
        END LOOP;
        BEGIN
            IF t.tgfoid = '@extschema@.cache_invalidate()'::pg_catalog.regprocedure THEN
                PERFORM @extschema@.cache_attach(t.tgrelid, VARIADIC args);
            ELSE
                PERFORM @extschema@.cache_attach_write_through(t.tgrelid, args[1],
                                                               args[2]::integer);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'cache_ext: the triggers of table % were left as cache_ext 0.1 made them: %',
                t.tgrelid::pg_catalog.regclass, SQLERRM
                USING HINT = 'Attach the table again with cache_attach() once the error is fixed.';
        END;
    END LOOP;
END
$$;

-- ---- end of triggers ----

-- ---- cache_fetch with parameters (src/fetch.c, src/fetch_check.c) ----
--
-- $1, $2, ... of the query are bound to the arguments after ttl, with
-- their own types.  Not STRICT: NULL parameters bind as NULL, a NULL ttl
-- means the default.  Both forms run one read-only SELECT with the
-- caller's privileges.
CREATE FUNCTION cache_fetch(key text, query text, ttl integer, VARIADIC params "any")
RETURNS jsonb
AS 'MODULE_PATHNAME', 'sql_cache_fetch_params'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- ---- comments: what \df+ cache_* and \dx+ cache_ext show ----

COMMENT ON FUNCTION cache_get(text) IS
    'the cached value of key, or NULL on a miss';
COMMENT ON FUNCTION cache_get_many(text[]) IS
    'one row per key that is present, in one round trip on Redis';
COMMENT ON FUNCTION cache_set(text, text, integer) IS
    'store value under key for ttl seconds (NULL: cache_ext.default_ttl, 0: never expires); false if not stored';
COMMENT ON FUNCTION cache_set(text, jsonb, integer) IS
    'store the JSON text of value under key for ttl seconds; false if not stored';
COMMENT ON FUNCTION cache_delete(text) IS
    'remove key; true if a live key was removed';
COMMENT ON FUNCTION cache_invalidate_prefix(text) IS
    'remove every key that starts with prefix, taken literally; returns how many';
COMMENT ON FUNCTION cache_invalidate_pattern(text) IS
    'remove every key matching a glob pattern (Redis MATCH semantics); a leading wildcard needs the privilege to run cache_flush()';
COMMENT ON FUNCTION cache_ttl(text) IS
    'seconds left before key expires, -1 if it never does, NULL if absent';
COMMENT ON FUNCTION cache_flush() IS
    'remove every key of this database''s namespace (not granted to PUBLIC)';
COMMENT ON FUNCTION cache_stats() IS
    'the session''s store: counters, size, hit ratio, and Redis invalidations queued and delivered';
COMMENT ON FUNCTION cache_reset_stats() IS
    'reset the counters (not granted to PUBLIC)';
COMMENT ON FUNCTION cache_fetch(text, text, integer) IS
    'cache-aside in one call: the cached JSON, or the rows of one read-only SELECT run with the caller''s privileges, stored under key';
COMMENT ON FUNCTION cache_fetch(text, text, integer, "any") IS
    'cache_fetch with parameters bound as $1, $2, ... in the query';
COMMENT ON FUNCTION cache_invalidate() IS
    'trigger function: invalidates its targets (prefixes, and key templates such as ''users:by_id:{id}'') in every configured store';
COMMENT ON FUNCTION cache_write_through() IS
    'trigger function: stores each written row''s JSON under its templated key';
COMMENT ON FUNCTION cache_attach(regclass, text[]) IS
    'create the invalidation triggers on a table (and its partitions) for the given targets; default: the table''s name followed by a colon';
COMMENT ON FUNCTION cache_attach_write_through(regclass, text, integer) IS
    'create write-through triggers on a table (its owner only)';
COMMENT ON FUNCTION cache_detach(regclass) IS
    'drop the triggers that cache_attach and cache_attach_write_through made';
COMMENT ON FUNCTION cache_invalidate_partition() IS
    'trigger function on partitions: TRUNCATE invalidates what a TRUNCATE of its ancestors would';
COMMENT ON FUNCTION cache_ddl_command_end() IS
    'event trigger function: keeps partition triggers right and refuses dropping or renaming a templated column';
COMMENT ON FUNCTION cache_ddl_command_start() IS
    'event trigger function: DROP TABLE of an attached table or partition invalidates its targets';

-- ---- monitoring: views in the pg_stat_* manner (src/stats.c) ----
--
-- cache_ext_stats: server-wide, one row per store; counters, the Redis
-- invalidation queue and stats_reset.  It asks no store anything, so it
-- never fails nor waits, whatever cache_ext.on_error says.

CREATE FUNCTION cache_ext_stats_rows(
    OUT store text,
    OUT hits bigint,
    OUT misses bigint,
    OUT sets bigint,
    OUT deletes bigint,
    OUT invalidations bigint,
    OUT evictions bigint,
    OUT expirations bigint,
    OUT errors bigint,
    OUT sets_refused bigint,
    OUT sets_too_large bigint,
    OUT invalidations_failed bigint,
    OUT queue_pushed bigint,
    OUT queue_length bigint,
    OUT queue_delivered bigint,
    OUT hit_ratio double precision,
    OUT stats_reset timestamp with time zone)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'sql_cache_ext_stats_rows'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE VIEW cache_ext_stats AS
    SELECT store, hits, misses, sets, deletes, invalidations, evictions,
           expirations, errors, sets_refused, sets_too_large,
           invalidations_failed, queue_pushed, queue_length, queue_delivered,
           hit_ratio, stats_reset
    FROM @extschema@.cache_ext_stats_rows();

-- cache_ext_stats_database: this database's view of each store's size;
-- NULL where the store cannot tell (Redis down or not configured, shared
-- memory not preloaded).  Failures are neither raised nor counted.

CREATE FUNCTION cache_ext_stats_database_rows(
    OUT store text,
    OUT entries bigint,
    OUT bytes_used bigint,
    OUT bytes_max bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'sql_cache_ext_stats_database_rows'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE VIEW cache_ext_stats_database AS
    SELECT d.oid AS datid, d.datname, s.store, s.entries, s.bytes_used,
           s.bytes_max
    FROM pg_catalog.pg_database d,
         @extschema@.cache_ext_stats_database_rows() s
    WHERE d.datname = pg_catalog.current_database();

-- cache_ext_attachments: the tables whose writes invalidate (or write
-- through), their targets and the stores a write reaches.

-- The arguments of a trigger, from pg_trigger.tgargs (each one
-- NUL-terminated, in the database encoding).
CREATE FUNCTION cache_ext_trigger_args(args bytea)
RETURNS text[]
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(pg_catalog.array_agg(
               pg_catalog.convert_from(pg_catalog.substr(args, z.s, z.e - z.s),
                                       pg_catalog.getdatabaseencoding())
               ORDER BY z.e), '{}')
    FROM (SELECT i + 1 AS e,
                 pg_catalog.lag(i + 1, 1, 0) OVER (ORDER BY i) + 1 AS s
          FROM pg_catalog.generate_series(0, pg_catalog.length(args) - 1) AS i
          WHERE pg_catalog.get_byte(args, i) = 0) AS z
$$;

CREATE FUNCTION cache_ext_written_stores()
RETURNS text[]
AS 'MODULE_PATHNAME', 'sql_cache_ext_written_stores'
LANGUAGE C STABLE PARALLEL RESTRICTED;

CREATE VIEW cache_ext_attachments AS
    WITH trg AS (
        SELECT t.tgrelid, t.tgname, t.tgfoid,
               @extschema@.cache_ext_trigger_args(t.tgargs) AS args
        FROM pg_catalog.pg_trigger t
        WHERE t.tgparentid = 0
          AND t.tgfoid IN ('@extschema@.cache_invalidate()'::pg_catalog.regprocedure,
                           '@extschema@.cache_write_through()'::pg_catalog.regprocedure))
    SELECT r.tgrelid::pg_catalog.regclass AS table_name,
           (SELECT pg_catalog.array_agg(DISTINCT a ORDER BY a)
            FROM trg, pg_catalog.unnest(trg.args) AS a
            WHERE trg.tgrelid = r.tgrelid
              AND trg.tgfoid = '@extschema@.cache_invalidate()'::pg_catalog.regprocedure)
             AS targets,
           w.args[1] AS write_through,
           w.args[2]::integer AS write_through_ttl,
           (SELECT pg_catalog.array_agg(trg.tgname ORDER BY trg.tgname)
            FROM trg WHERE trg.tgrelid = r.tgrelid) AS triggers,
           @extschema@.cache_ext_written_stores() AS stores
    FROM (SELECT DISTINCT tgrelid FROM trg) AS r
    LEFT JOIN trg AS w
      ON w.tgrelid = r.tgrelid AND w.tgname = 'cache_write_through'
     AND w.tgfoid = '@extschema@.cache_write_through()'::pg_catalog.regprocedure;

-- cache_ext_fetch_locks: the key locks of cache_fetch() (single-flight),
-- from pg_locks, with the key each one is for.  Keys can be sensitive:
-- readable by pg_monitor, not by PUBLIC.

CREATE FUNCTION cache_ext_fetch_keys(
    OUT pid integer,
    OUT store text,
    OUT key_hash bigint,
    OUT key text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'sql_cache_ext_fetch_keys'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE VIEW cache_ext_fetch_locks AS
    WITH k AS MATERIALIZED (SELECT * FROM @extschema@.cache_ext_fetch_keys()),
    l AS (
        SELECT pid, database, granted, waitstart,
               (classid::bigint << 32) | objid::bigint AS key_hash
        FROM pg_catalog.pg_locks
        -- FETCH_LOCK_FIELD4 (0xCAC4) of src/fetch.c, which pg_locks shows
        -- as a smallint: 0xCAC4 - 0x10000
        WHERE locktype = 'advisory' AND objsubid = -13628)
    SELECT l.pid, d.datname,
           coalesce(own.store, other.store) AS store,
           coalesce(own.key, other.key) AS key,
           l.key_hash, l.granted, l.waitstart
    FROM l
    LEFT JOIN pg_catalog.pg_database d ON d.oid = l.database
    LEFT JOIN k AS own ON own.pid = l.pid AND own.key_hash = l.key_hash
    LEFT JOIN LATERAL (SELECT k.store, k.key FROM k
                       WHERE k.key_hash = l.key_hash AND k.key IS NOT NULL
                       LIMIT 1) AS other ON true;

REVOKE ALL ON FUNCTION cache_ext_fetch_keys() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cache_ext_fetch_keys() TO pg_monitor;
GRANT SELECT ON cache_ext_fetch_locks TO pg_monitor;
-- the counters and attachments are no secret (cache_stats() is PUBLIC's)
GRANT SELECT ON cache_ext_stats, cache_ext_stats_database,
    cache_ext_attachments TO PUBLIC;
GRANT SELECT ON cache_ext_stats, cache_ext_stats_database,
    cache_ext_attachments TO pg_monitor;

COMMENT ON FUNCTION cache_ext_stats_rows() IS
    'the rows of the cache_ext_stats view';
COMMENT ON FUNCTION cache_ext_stats_database_rows() IS
    'the rows of the cache_ext_stats_database view';
COMMENT ON FUNCTION cache_ext_trigger_args(bytea) IS
    'the arguments of a trigger, from pg_trigger.tgargs';
COMMENT ON FUNCTION cache_ext_written_stores() IS
    'the stores a write invalidates, whatever the session''s cache_ext.backend';
COMMENT ON FUNCTION cache_ext_fetch_keys() IS
    'backends inside cache_fetch() between a miss and storing its result: pid, store, key lock hash, key';
COMMENT ON VIEW cache_ext_stats IS
    'server-wide statistics, one row per store: counters since stats_reset, the Redis invalidation queue';
COMMENT ON VIEW cache_ext_stats_database IS
    'each store''s size as this database sees it; NULL where the store cannot tell';
COMMENT ON VIEW cache_ext_attachments IS
    'tables attached with cache_attach or cache_attach_write_through: targets, triggers, stores a write reaches';
COMMENT ON VIEW cache_ext_fetch_locks IS
    'cache_fetch key locks held and awaited, with their keys (pg_monitor)';
