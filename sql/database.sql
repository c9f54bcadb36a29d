--
-- database: in the shared-memory store each database has its own
-- namespace: a key set in one database is not seen, removed or flushed from
-- another.  In Redis a key lives under cache_ext.key_prefix || key, as other
-- Redis clients see it, so two databases using the same Redis share keys.
-- Each check below holds for the store in use (:'isolated' is true for
-- shmem).  Needs the right to create a database; the one made is dropped.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
RESET client_min_messages;
SELECT cache_flush() >= 0 AS flushed;

SELECT current_database() AS regress_db, current_database() || '_other' AS other_db,
       current_setting('cache_ext.backend') = 'shmem' AS isolated \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS :"other_db";
RESET client_min_messages;
CREATE DATABASE :"other_db" TEMPLATE template0;

-- in the first database: a key only set here, and one set in both
SELECT cache_set('db:here', 'first db', 0), cache_set('db:both', 'first', 0);

\c :other_db
SET client_min_messages = warning;
CREATE EXTENSION cache_ext;
RESET client_min_messages;
SELECT cache_set('db:both', 'second', 0);
SELECT (cache_get('db:here') IS NULL) = :'isolated'::boolean AS namespace_as_expected,
       (cache_ttl('db:here') IS NULL) = :'isolated'::boolean AS ttl_as_expected,
       cache_get('db:both') AS both_here;
SELECT string_agg(key, ',' ORDER BY key COLLATE "C") =
       CASE WHEN :'isolated'::boolean THEN 'db:both' ELSE 'db:both,db:here' END AS get_many_as_expected
FROM cache_get_many(ARRAY['db:here', 'db:both']);
-- removals reach only this database's keys (in Redis: the shared key)
SELECT cache_invalidate_pattern('db:h*') = CASE WHEN :'isolated'::boolean THEN 0 ELSE 1 END
       AS pattern_as_expected;
SELECT cache_delete('db:here') AS deleted;
SELECT cache_invalidate_prefix('db:here') AS by_prefix;
-- only db:both is left here, in either store
SELECT cache_flush() AS flushed_here;

\c :regress_db
SET client_min_messages = warning;
DROP DATABASE :"other_db" WITH (FORCE);
RESET client_min_messages;
-- back in the first database: its keys survived the other database's
-- removals (shmem), or are gone with the shared Redis keys (redis)
SELECT (cache_get('db:here') IS NOT NULL) = :'isolated'::boolean AS here_as_expected,
       coalesce(cache_get('db:both'), 'gone') =
       CASE WHEN :'isolated'::boolean THEN 'first' ELSE 'gone' END AS both_as_expected;
SELECT cache_flush() >= 0 AS flushed;
