--
-- partitions: writes aimed at a partition of an attached partitioned table
-- invalidate, whatever the path (INSERT, UPDATE, DELETE, COPY, MERGE,
-- INSERT ... ON CONFLICT, TRUNCATE), for partitions that existed when the
-- table was attached and for those created or attached later, at any
-- depth; attaching or detaching a partition invalidates the partitioned
-- table's targets.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
RESET client_min_messages;
SELECT cache_flush() >= 0 AS flushed;

-- err(sql): runs sql and shows "SQLSTATE: message" of the error it raises
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- seed(keys) / present(keys): as in triggers.sql.  Every case uses the
-- same keys: orders:list (the prefix), the keys of row 1 in eu and of row
-- 2 in us (the template orders:{region}:{id}), and a key of another table.
CREATE FUNCTION pg_temp.seed(VARIADIC keys text[]) RETURNS boolean
LANGUAGE sql AS $$
    SELECT bool_and(cache_set(k, 'v', 0)) FROM unnest(keys) AS k
$$;
CREATE FUNCTION pg_temp.present(VARIADIC keys text[]) RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(k, ' ' ORDER BY k COLLATE "C"), '(none)')
    FROM unnest(keys) AS k WHERE cache_ttl(k) IS NOT NULL
$$;
CREATE FUNCTION pg_temp.seed_all() RETURNS boolean LANGUAGE sql AS $$
    SELECT pg_temp.seed('orders:list', 'orders:eu:1', 'orders:us:2', 'other:x')
$$;
CREATE FUNCTION pg_temp.present_all() RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.present('orders:list', 'orders:eu:1', 'orders:us:2', 'other:x')
$$;
-- tree_triggers(tbl): the triggers of tbl and of its partitions at any
-- depth: when they fire (A = always) and whether PostgreSQL cloned them
-- from the partitioned table
CREATE FUNCTION pg_temp.tree_triggers(tbl regclass)
RETURNS TABLE (tbl regclass, tgname name, fires "char", cloned boolean, def text)
LANGUAGE sql AS $$
    SELECT t.tgrelid::regclass, t.tgname, t.tgenabled, t.tgparentid <> 0,
           pg_get_triggerdef(t.oid)
    FROM pg_partition_tree(tbl) p JOIN pg_trigger t ON t.tgrelid = p.relid
    WHERE NOT t.tgisinternal
    ORDER BY p.level, t.tgrelid::regclass::text COLLATE "C", t.tgname
$$;

CREATE TABLE orders (id int, region text, total int, PRIMARY KEY (id, region))
    PARTITION BY LIST (region);
CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
-- two levels: us is partitioned again
CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us')
    PARTITION BY RANGE (id);
CREATE TABLE orders_us_low PARTITION OF orders_us FOR VALUES FROM (0) TO (100);
INSERT INTO orders VALUES (1, 'eu', 10), (2, 'us', 20);

----------------------------------------------------------------------
-- attaching: the row trigger holds every target and is cloned to the
-- partitions; each partition gets a TRUNCATE trigger
----------------------------------------------------------------------
SELECT cache_attach('orders', 'orders:list', 'orders:{region}:{id}');
SELECT * FROM pg_temp.tree_triggers('orders');

-- writes aimed at a partition
SELECT pg_temp.seed_all();
UPDATE orders_eu SET total = 11 WHERE id = 1;
SELECT pg_temp.present_all();
SELECT pg_temp.seed_all();
UPDATE orders_us_low SET total = 21 WHERE id = 2;
SELECT pg_temp.present_all();
SELECT pg_temp.seed_all();
INSERT INTO orders_eu VALUES (3, 'eu', 30);
SELECT pg_temp.present_all();
SELECT pg_temp.seed_all();
DELETE FROM orders_eu WHERE id = 3;
SELECT pg_temp.present_all();
-- a statement that changes no row invalidates nothing
SELECT pg_temp.seed_all();
UPDATE orders_eu SET total = 0 WHERE false;
SELECT pg_temp.present_all();
-- COPY, into a partition and into the partitioned table
SELECT pg_temp.seed_all();
COPY orders_eu FROM STDIN;
4	eu	40
\.
SELECT pg_temp.present_all();
SELECT pg_temp.seed_all();
COPY orders FROM STDIN;
5	us	50
\.
SELECT pg_temp.present_all();
-- writes aimed at the partitioned table: a row moved to another partition
-- clears its old key and its new one
SELECT pg_temp.seed('orders:list', 'orders:eu:1', 'orders:us:1', 'orders:us:2');
UPDATE orders SET region = 'us' WHERE id = 1;
SELECT pg_temp.present('orders:list', 'orders:eu:1', 'orders:us:1', 'orders:us:2');
UPDATE orders SET region = 'eu' WHERE id = 1;
-- MERGE, into the partitioned table and into a partition
SELECT pg_temp.seed_all();
MERGE INTO orders o USING (VALUES (1, 'eu', 12)) AS v(id, region, total)
    ON o.id = v.id AND o.region = v.region
    WHEN MATCHED THEN UPDATE SET total = v.total
    WHEN NOT MATCHED THEN INSERT VALUES (v.id, v.region, v.total);
SELECT pg_temp.present_all();
SELECT pg_temp.seed_all();
MERGE INTO orders_us_low o USING (VALUES (2, 'us', 22)) AS v(id, region, total)
    ON o.id = v.id
    WHEN MATCHED THEN UPDATE SET total = v.total;
SELECT pg_temp.present_all();
-- INSERT ... ON CONFLICT on a partition
SELECT pg_temp.seed_all();
INSERT INTO orders_eu VALUES (1, 'eu', 13)
    ON CONFLICT (id, region) DO UPDATE SET total = excluded.total;
SELECT pg_temp.present_all();
SELECT pg_temp.seed_all();
INSERT INTO orders_eu VALUES (1, 'eu', 14) ON CONFLICT DO NOTHING;
SELECT pg_temp.present_all();
-- TRUNCATE of a partition, at either depth, and of the partitioned table
INSERT INTO orders VALUES (6, 'eu', 60), (7, 'us', 70);
SELECT pg_temp.seed_all();
TRUNCATE orders_eu;
SELECT pg_temp.present_all();
SELECT pg_temp.seed_all();
TRUNCATE orders_us_low;
SELECT pg_temp.present_all();
SELECT pg_temp.seed_all();
TRUNCATE orders;
SELECT pg_temp.present_all();
INSERT INTO orders VALUES (1, 'eu', 10), (2, 'us', 20);
-- session_replication_role = replica: the clones fire always too
SELECT pg_temp.seed_all();
SET session_replication_role = replica;
UPDATE orders_eu SET total = 15 WHERE id = 1;
RESET session_replication_role;
SELECT pg_temp.present_all();
SELECT pg_temp.seed_all();
SET session_replication_role = replica;
TRUNCATE orders_us_low;
RESET session_replication_role;
SELECT pg_temp.present_all();
INSERT INTO orders VALUES (2, 'us', 20);

----------------------------------------------------------------------
-- partitions created after attaching, at either depth
----------------------------------------------------------------------
CREATE TABLE orders_asia PARTITION OF orders FOR VALUES IN ('asia');
CREATE TABLE orders_us_high PARTITION OF orders_us FOR VALUES FROM (100) TO (1000);
SELECT * FROM pg_temp.tree_triggers('orders')
WHERE tbl IN ('orders_asia'::regclass, 'orders_us_high'::regclass);
SELECT pg_temp.seed('orders:list', 'orders:asia:8', 'orders:us:108');
INSERT INTO orders_asia VALUES (8, 'asia', 80);
INSERT INTO orders_us_high VALUES (108, 'us', 80);
SELECT pg_temp.present('orders:list', 'orders:asia:8', 'orders:us:108');
SELECT pg_temp.seed('orders:list', 'orders:asia:8', 'other:x');
TRUNCATE orders_asia;
SELECT pg_temp.present('orders:list', 'orders:asia:8', 'other:x');
SELECT pg_temp.seed('orders:list', 'orders:us:108', 'other:x');
TRUNCATE orders_us_high;
SELECT pg_temp.present('orders:list', 'orders:us:108', 'other:x');

----------------------------------------------------------------------
-- ATTACH PARTITION and DETACH PARTITION change the partitioned table's
-- rows: they invalidate its targets as TRUNCATE does
----------------------------------------------------------------------
CREATE TABLE orders_sa (id int, region text, total int, PRIMARY KEY (id, region));
INSERT INTO orders_sa VALUES (9, 'sa', 90);
SELECT pg_temp.seed('orders:list', 'orders:sa:9', 'orders:eu:1', 'other:x');
ALTER TABLE orders ATTACH PARTITION orders_sa FOR VALUES IN ('sa');
SELECT pg_temp.present('orders:list', 'orders:sa:9', 'orders:eu:1', 'other:x');
SELECT * FROM pg_temp.tree_triggers('orders_sa');
SELECT pg_temp.seed('orders:list', 'orders:sa:9');
TRUNCATE orders_sa;
SELECT pg_temp.present('orders:list', 'orders:sa:9');
INSERT INTO orders_sa VALUES (9, 'sa', 90);
-- a partitioned table attached with its partitions
CREATE TABLE orders_af (id int, region text, total int, PRIMARY KEY (id, region))
    PARTITION BY RANGE (id);
CREATE TABLE orders_af_all PARTITION OF orders_af FOR VALUES FROM (0) TO (1000);
SELECT pg_temp.seed('orders:list', 'other:x');
ALTER TABLE orders ATTACH PARTITION orders_af FOR VALUES IN ('af');
SELECT pg_temp.present('orders:list', 'other:x');
SELECT * FROM pg_temp.tree_triggers('orders_af');
-- detaching: invalidates, and the detached table's writes no longer do
SELECT pg_temp.seed('orders:list', 'orders:sa:9', 'orders:eu:1', 'other:x');
ALTER TABLE orders DETACH PARTITION orders_sa;
SELECT pg_temp.present('orders:list', 'orders:sa:9', 'orders:eu:1', 'other:x');
SELECT * FROM pg_temp.tree_triggers('orders_sa');
SELECT pg_temp.seed('orders:list', 'orders:sa:9');
UPDATE orders_sa SET total = 91;
TRUNCATE orders_sa;
SELECT pg_temp.present('orders:list', 'orders:sa:9');
SELECT pg_temp.seed('orders:list', 'other:x');
ALTER TABLE orders DETACH PARTITION orders_af CONCURRENTLY;
SELECT pg_temp.present('orders:list', 'other:x');
SELECT * FROM pg_temp.tree_triggers('orders_af');
DROP TABLE orders_sa, orders_af;
-- dropping a partition drops its rows: the partitioned table's targets go
-- (but not when the DROP is refused: only the owner's DROP invalidates)
CREATE TABLE orders_old PARTITION OF orders FOR VALUES IN ('old');
CREATE ROLE regress_cache_partition_user;
SELECT pg_temp.seed('orders:list', 'orders:eu:1', 'other:x');
SET ROLE regress_cache_partition_user;
SELECT pg_temp.err($$DROP TABLE orders_old$$);
RESET ROLE;
SELECT pg_temp.present('orders:list', 'orders:eu:1', 'other:x');
DROP TABLE orders_old;
SELECT pg_temp.present('orders:list', 'orders:eu:1', 'other:x');
DROP ROLE regress_cache_partition_user;

----------------------------------------------------------------------
-- a partition is covered by its partitioned table's triggers, not its own
----------------------------------------------------------------------
SELECT pg_temp.err($$SELECT cache_attach('orders_eu', 'eu:')$$);
SELECT cache_detach('orders_eu');

----------------------------------------------------------------------
-- schema changes on the partitioned table are checked too
----------------------------------------------------------------------
ALTER TABLE orders RENAME COLUMN id TO order_id;
ALTER TABLE orders ADD COLUMN note text;
ALTER TABLE orders DROP COLUMN note;

----------------------------------------------------------------------
-- write-through on a partitioned table: row images of rows written to a
-- partition, gone with a TRUNCATE of the partition
----------------------------------------------------------------------
SELECT cache_attach_write_through('orders', 'order:{region}:{id}', 0);
INSERT INTO orders_eu VALUES (20, 'eu', 200);
SELECT cache_get('order:eu:20') AS row_image;
TRUNCATE orders_eu;
SELECT cache_get('order:eu:20') IS NULL AS truncated;
INSERT INTO orders_eu VALUES (1, 'eu', 10);

----------------------------------------------------------------------
-- attaching again replaces; detaching removes every trigger of the tree
----------------------------------------------------------------------
SELECT cache_attach('orders', 'orders:');
SELECT tbl, tgname, fires, cloned FROM pg_temp.tree_triggers('orders')
WHERE tbl IN ('orders'::regclass, 'orders_us'::regclass, 'orders_us_low'::regclass);
SELECT cache_detach('orders');
SELECT * FROM pg_temp.tree_triggers('orders');
SELECT pg_temp.seed('orders:list', 'orders:eu:1');
UPDATE orders_eu SET total = 16;
SELECT pg_temp.present('orders:list', 'orders:eu:1');

DROP TABLE orders;
