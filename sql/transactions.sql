--
-- transactions: sets of a transaction that has written are applied at
-- commit and dropped on rollback; sets before its first write apply at
-- once; PREPARE TRANSACTION with pending cache work is refused.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
RESET client_min_messages;
SELECT cache_flush() >= 0 AS flushed;
CREATE TABLE tx_log (id serial PRIMARY KEY, note text);

-- before the first write a set takes effect at once and survives a
-- rollback; after it, a set is pending and goes with the rollback
BEGIN;
SELECT cache_set('tx:before', 'b', 0) AS stored_before_write;
INSERT INTO tx_log (note) VALUES ('w');
SELECT cache_set('tx:after', 'a', 0) AS stored_after_write;
SELECT cache_get('tx:after') AS own_pending_value, cache_ttl('tx:after') AS own_pending_ttl;
ROLLBACK;
SELECT cache_get('tx:before') AS before_write_kept, cache_get('tx:after') IS NULL AS after_write_dropped;

-- committed: the pending value lands; a pending set overwritten and then
-- deleted in the same transaction leaves nothing
BEGIN;
INSERT INTO tx_log (note) VALUES ('w');
SELECT cache_set('tx:after', 'a1', 0), cache_set('tx:after', 'a2', 0);
SELECT cache_set('tx:gone', 'g', 0), cache_delete('tx:gone') AS deleted_pending;
COMMIT;
SELECT cache_get('tx:after') AS committed_value, cache_get('tx:gone') IS NULL AS gone;

-- a subtransaction that rolls back takes its sets with it
BEGIN;
INSERT INTO tx_log (note) VALUES ('w');
SELECT cache_set('tx:sub', 'outer', 0);
SAVEPOINT s1;
SELECT cache_set('tx:sub', 'inner', 0);
SELECT cache_set('tx:sub_only', 'inner', 0);
ROLLBACK TO SAVEPOINT s1;
SELECT cache_get('tx:sub') AS own_view_after_rollback_to, cache_get('tx:sub_only') IS NULL AS sub_only_dropped;
COMMIT;
SELECT cache_get('tx:sub') AS committed_sub;

-- PREPARE TRANSACTION with pending sets or invalidations is refused (and
-- the transaction is rolled back, its pending set with it)
BEGIN;
INSERT INTO tx_log (note) VALUES ('w');
SELECT cache_set('tx:prepared', 'p', 0);
PREPARE TRANSACTION 'cache_ext_tx';
SELECT cache_get('tx:prepared') IS NULL AS prepared_set_dropped;
SELECT count(*) AS prepared_xacts FROM pg_prepared_xacts WHERE gid = 'cache_ext_tx';
BEGIN;
SELECT cache_delete('tx:before');
PREPARE TRANSACTION 'cache_ext_tx';

DROP TABLE tx_log;
SELECT cache_flush() >= 0 AS flushed;
