--
-- privileges: cache_flush() and cache_reset_stats() are not granted to
-- PUBLIC, nor is emptying a namespace by a pattern; choosing the store is
-- a privilege (GRANT SET ON PARAMETER); everything else is usable by any
-- role; the Redis connection settings are superuser-only and the URL's
-- password is never shown, nor stored where every role can read it.
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

-- what PUBLIC may execute
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_execute
FROM pg_proc p
WHERE p.proname IN ('cache_get', 'cache_get_many', 'cache_set', 'cache_delete',
   'cache_invalidate_prefix', 'cache_invalidate_pattern', 'cache_ttl',
   'cache_flush', 'cache_stats', 'cache_reset_stats')
  AND p.pronamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'cache_ext')
ORDER BY p.oid::regprocedure::text COLLATE "C";

CREATE ROLE regress_cache_user;
SELECT cache_set('priv:admin', 'set by superuser', 0);
SET ROLE regress_cache_user;
SELECT current_user;

-- an ordinary role uses the cache
SELECT cache_get('priv:admin');
SELECT cache_set('priv:user', 'set by user', 60), cache_set('priv:json', '[1]'::jsonb);
SELECT * FROM cache_get_many(ARRAY['priv:user', 'priv:json']) ORDER BY key COLLATE "C";
SELECT cache_ttl('priv:user') > 0 AS ttl;
SELECT cache_delete('priv:json');
SELECT cache_invalidate_pattern('priv:u*');
-- a pattern that starts with a wildcard could empty the namespace
SELECT cache_set('priv:keep', 'kept');
SELECT pg_temp.err($$SELECT cache_invalidate_pattern('*')$$);
SELECT pg_temp.err($$SELECT cache_invalidate_pattern('?riv:*')$$);
SELECT pg_temp.err($$SELECT cache_invalidate_pattern('[p]riv:*')$$);
SELECT cache_get('priv:keep');
-- an escaped first character is a literal one
SELECT cache_invalidate_pattern('\*nothing*');
SELECT cache_invalidate_prefix('priv:');
SELECT hits >= 0 AS stats_readable FROM cache_stats();
-- and may change the user-level settings
SET cache_ext.default_ttl = 10;
SET cache_ext.max_value_size = '2kB';
SET cache_ext.on_error = 'warn';
RESET cache_ext.default_ttl;
RESET cache_ext.max_value_size;
RESET cache_ext.on_error;

-- but not flush, nor reset the statistics
SELECT pg_temp.err($$SELECT cache_flush()$$);
SELECT pg_temp.err($$SELECT cache_reset_stats()$$);
-- nor change the superuser settings
SELECT pg_temp.err($$SET cache_ext.backend = 'redis'$$);
SELECT pg_temp.err($$SET cache_ext.backend = 'shmem'$$);
SELECT pg_temp.err($$SET cache_ext.redis_url = 'redis://127.0.0.1:1/0'$$);
SELECT pg_temp.err($$SET cache_ext.key_prefix = 'mine:'$$);
SELECT pg_temp.err($$SET cache_ext.redis_connect_timeout = 1$$);
SELECT pg_temp.err($$SET cache_ext.redis_command_timeout = 1$$);
RESET ROLE;

-- a superuser can grant them
GRANT EXECUTE ON FUNCTION cache_flush(), cache_reset_stats() TO regress_cache_user;
SELECT cache_set('priv:flushme', 'v');
SET ROLE regress_cache_user;
SELECT cache_flush() >= 1 AS flushed_by_user;
-- (not called: it would reset a server's statistics under make installcheck)
SELECT has_function_privilege('cache_reset_stats()', 'EXECUTE') AS may_reset_stats;
RESET ROLE;
SELECT cache_get('priv:flushme') IS NULL AS flushed;
SET ROLE regress_cache_user;
SELECT cache_invalidate_pattern('*') >= 0 AS pattern_allowed_with_flush;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION cache_flush(), cache_reset_stats() FROM regress_cache_user;

-- choosing the store is granted the PostgreSQL 15 way
GRANT SET ON PARAMETER cache_ext.backend TO regress_cache_user;
SET ROLE regress_cache_user;
SELECT set_config('cache_ext.backend', current_setting('cache_ext.backend'), false) IS NOT NULL AS backend_settable;
RESET ROLE;
REVOKE SET ON PARAMETER cache_ext.backend FROM regress_cache_user;

-- ALTER ROLE/DATABASE ... SET keeps values in pg_db_role_setting, which
-- every role reads: a Redis password is refused there, a URL without one
-- is accepted
SELECT pg_temp.err($$ALTER ROLE regress_cache_user SET cache_ext.redis_url = 'redis://:s3cr3t-pw@127.0.0.1:6399/0'$$);
SELECT pg_temp.err($$ALTER DATABASE $$ || quote_ident(current_database()) || $$ SET cache_ext.redis_url = 'redis://app:s3cr3t-pw@127.0.0.1:6399/0'$$);
SELECT count(*) AS settings_with_password FROM pg_db_role_setting, unnest(setconfig) c
WHERE c LIKE '%s3cr3t-pw%';
ALTER ROLE regress_cache_user SET cache_ext.redis_url = 'redis://127.0.0.1:6399/0';
ALTER ROLE regress_cache_user RESET cache_ext.redis_url;

-- the Redis password is never shown to a non-superuser (nothing connects:
-- the URL is only set and read inside a transaction that is rolled back)
BEGIN;
SET LOCAL cache_ext.redis_url = 'redis://:s3cr3t-pw@127.0.0.1:6399/3';
SET LOCAL ROLE regress_cache_user;
SELECT position('s3cr3t-pw' IN current_setting('cache_ext.redis_url')) = 0 AS hidden_current_setting;
SELECT count(*) AS rows_showing_password FROM pg_settings
WHERE name = 'cache_ext.redis_url' AND setting LIKE '%s3cr3t-pw%';
SELECT position('127.0.0.1:6399' IN current_setting('cache_ext.redis_url')) > 0 AS host_still_shown;
ROLLBACK;

DROP ROLE regress_cache_user;
SELECT cache_flush() >= 0 AS flushed;
