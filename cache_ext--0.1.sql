/* cache_ext--0.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION cache_ext" to load this file. \quit

-- Reads run in the leader only: the transactional rules keep per-session
-- state that parallel workers do not share.  Writes are parallel unsafe.

CREATE FUNCTION cache_get(key text)
RETURNS text
AS 'MODULE_PATHNAME', 'sql_cache_get'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION cache_get_many(keys text[])
RETURNS TABLE (key text, value text)
AS 'MODULE_PATHNAME', 'sql_cache_get_many'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED
ROWS 10;

-- Not STRICT: a NULL ttl means cache_ext.default_ttl.
CREATE FUNCTION cache_set(key text, value text, ttl integer DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'sql_cache_set'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cache_set(key text, value jsonb, ttl integer DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'sql_cache_set_jsonb'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cache_delete(key text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'sql_cache_delete'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cache_invalidate_prefix(prefix text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'sql_cache_invalidate_prefix'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cache_invalidate_pattern(pattern text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'sql_cache_invalidate_pattern'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cache_ttl(key text)
RETURNS integer
AS 'MODULE_PATHNAME', 'sql_cache_ttl'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION cache_flush()
RETURNS bigint
AS 'MODULE_PATHNAME', 'sql_cache_flush'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

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
    OUT hit_ratio double precision)
RETURNS record
AS 'MODULE_PATHNAME', 'sql_cache_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION cache_reset_stats()
RETURNS void
AS 'MODULE_PATHNAME', 'sql_cache_reset_stats'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION cache_flush() FROM PUBLIC;
REVOKE ALL ON FUNCTION cache_reset_stats() FROM PUBLIC;

-- Cache-aside in one call.  Not STRICT: a NULL ttl means the default.
-- The query runs with the caller's privileges (not SECURITY DEFINER).
CREATE FUNCTION cache_fetch(key text, query text, ttl integer DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'sql_cache_fetch'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- ---- triggers: invalidation and write-through (src/trigger.c) ----
--
-- cache_attach() creates the triggers cache_invalidate_stmt (prefixes,
-- and templates on TRUNCATE) and, when there are key templates,
-- cache_invalidate_row; cache_attach_write_through() creates
-- cache_write_through and cache_write_through_truncate; cache_detach()
-- drops all four.  Their targets are checked when attached, and again by
-- the trigger functions for triggers created by hand.

CREATE FUNCTION cache_invalidate()
RETURNS trigger
AS 'MODULE_PATHNAME', 'sql_cache_invalidate'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cache_write_through()
RETURNS trigger
AS 'MODULE_PATHNAME', 'sql_cache_write_through'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- With no targets, the target is the table's name followed by ':'.
CREATE FUNCTION cache_attach(tbl regclass, VARIADIC targets text[] DEFAULT '{}')
RETURNS void
AS 'MODULE_PATHNAME', 'sql_cache_attach'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

-- Not STRICT: a NULL ttl means cache_ext.default_ttl, read at each write.
CREATE FUNCTION cache_attach_write_through(tbl regclass, template text,
                                           ttl integer DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'sql_cache_attach_write_through'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cache_detach(tbl regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'sql_cache_detach'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

-- ---- end of triggers ----
