--
-- triggers: cache_attach() / cache_detach() and the cache_invalidate()
-- trigger (prefixes per statement, key templates per row, TRUNCATE, every
-- target at every level), write-through with cache_attach_write_through()
-- / cache_write_through(), session_replication_role = replica, and schema
-- changes that would break a key template.  Partitions: partitions.sql.
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

-- seed(keys): store each key (true if all were stored).  present(keys):
-- those of the keys that are cached, checked with cache_ttl so that no
-- miss is recorded (a miss followed by an invalidation may make a later
-- set return false).  Each case seeds, writes, then looks, each in its own
-- transaction: a trigger's invalidation is applied again at commit.
CREATE FUNCTION pg_temp.seed(VARIADIC keys text[]) RETURNS boolean
LANGUAGE sql AS $$
    SELECT bool_and(cache_set(k, 'v', 0)) FROM unnest(keys) AS k
$$;
CREATE FUNCTION pg_temp.present(VARIADIC keys text[]) RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(k, ' ' ORDER BY k COLLATE "C"), '(none)')
    FROM unnest(keys) AS k WHERE cache_ttl(k) IS NOT NULL
$$;
-- triggers(tbl): the table's triggers, when they fire (tgenabled: A =
-- always, R = only with session_replication_role = replica) and their
-- definitions
CREATE FUNCTION pg_temp.triggers(tbl regclass)
RETURNS TABLE (tgname name, fires "char", def text)
LANGUAGE sql AS $$
    SELECT tgname, tgenabled, pg_get_triggerdef(oid) FROM pg_trigger
    WHERE tgrelid = tbl AND NOT tgisinternal ORDER BY 1
$$;

CREATE TABLE users (user_id int PRIMARY KEY, name text, org_id int);

----------------------------------------------------------------------
-- cache_attach with no targets: the prefix "users:", per statement (and
-- per row for a logical-replication apply worker, which fires row triggers
-- only), and on TRUNCATE
----------------------------------------------------------------------
SELECT cache_attach('users');
SELECT * FROM pg_temp.triggers('users');

SELECT pg_temp.seed('users:1', 'users:all', 'usersX', 'orders:x');
INSERT INTO users VALUES (1, 'ann', 10), (2, 'bob', 10), (3, 'cy', NULL);
SELECT pg_temp.present('users:1', 'users:all', 'usersX', 'orders:x');

SELECT pg_temp.seed('users:1', 'users:all', 'usersX', 'orders:x');
UPDATE users SET name = 'ann' WHERE user_id = 1;
SELECT pg_temp.present('users:1', 'users:all', 'usersX', 'orders:x');

SELECT pg_temp.seed('users:1', 'users:all', 'usersX', 'orders:x');
DELETE FROM users WHERE user_id = 3;
SELECT pg_temp.present('users:1', 'users:all', 'usersX', 'orders:x');

-- a statement trigger fires even when no row matched
SELECT pg_temp.seed('users:1', 'users:all', 'usersX', 'orders:x');
UPDATE users SET name = 'nobody' WHERE false;
SELECT pg_temp.present('users:1', 'users:all', 'usersX', 'orders:x');

-- a read does not invalidate
SELECT pg_temp.seed('users:1', 'users:all', 'usersX', 'orders:x');
SELECT count(*) FROM users;
SELECT pg_temp.present('users:1', 'users:all', 'usersX', 'orders:x');

----------------------------------------------------------------------
-- cache_attach with targets: attaching again replaces the triggers
----------------------------------------------------------------------
INSERT INTO users VALUES (3, 'cy', NULL);
SELECT cache_attach('users', 'users:all', 'users:by_id:{user_id}',
                    'org:{org_id}:user:{user_id}', 'users:by_name:{name}');
SELECT * FROM pg_temp.triggers('users');

-- UPDATE of row 1: its keys and the prefix go, row 2's keys stay
SELECT pg_temp.seed('users:all', 'users:by_id:1', 'users:by_id:2',
                    'org:10:user:1', 'org:10:user:2', 'users:by_name:ann',
                    'users:by_name:bob', 'users:other', 'orders:x');
UPDATE users SET name = 'ann' WHERE user_id = 1;
SELECT pg_temp.present('users:all', 'users:by_id:1', 'users:by_id:2',
                       'org:10:user:1', 'org:10:user:2', 'users:by_name:ann',
                       'users:by_name:bob', 'users:other', 'orders:x');

-- INSERT: the new row's keys
SELECT pg_temp.seed('users:all', 'users:by_id:1', 'users:by_id:4',
                    'org:20:user:4', 'users:by_name:dee', 'orders:x');
INSERT INTO users VALUES (4, 'dee', 20);
SELECT pg_temp.present('users:all', 'users:by_id:1', 'users:by_id:4',
                       'org:20:user:4', 'users:by_name:dee', 'orders:x');

-- DELETE: the old row's keys
SELECT pg_temp.seed('users:all', 'users:by_id:1', 'users:by_id:2',
                    'org:10:user:1', 'org:10:user:2', 'users:by_name:bob',
                    'orders:x');
DELETE FROM users WHERE user_id = 2;
SELECT pg_temp.present('users:all', 'users:by_id:1', 'users:by_id:2',
                       'org:10:user:1', 'org:10:user:2', 'users:by_name:bob',
                       'orders:x');

-- UPDATE of a key column: the old key and the new key
SELECT pg_temp.seed('users:by_id:4', 'users:by_id:5', 'users:by_id:1',
                    'org:20:user:4', 'org:20:user:5', 'users:by_name:dee');
UPDATE users SET user_id = 5 WHERE user_id = 4;
SELECT pg_temp.present('users:by_id:4', 'users:by_id:5', 'users:by_id:1',
                       'org:20:user:4', 'org:20:user:5', 'users:by_name:dee');

-- multi-column template: changing either column clears both keys
SELECT pg_temp.seed('org:10:user:1', 'org:30:user:1', 'org:20:user:5',
                    'users:by_id:5');
UPDATE users SET org_id = 30 WHERE user_id = 1;
SELECT pg_temp.present('org:10:user:1', 'org:30:user:1', 'org:20:user:5',
                       'users:by_id:5');

-- a NULL column makes no key: row 3 has no org key, and that is no error
SELECT pg_temp.seed('users:by_id:3', 'users:by_name:cy', 'org::user:3',
                    'org:NULL:user:3', 'org:null:user:3');
UPDATE users SET name = 'cy' WHERE user_id = 3;
SELECT pg_temp.present('users:by_id:3', 'users:by_name:cy', 'org::user:3',
                       'org:NULL:user:3', 'org:null:user:3');
SELECT pg_temp.seed('users:by_id:3', 'users:by_name:cy', 'org:40:user:3');
UPDATE users SET org_id = 40 WHERE user_id = 3;
SELECT pg_temp.present('users:by_id:3', 'users:by_name:cy', 'org:40:user:3');

-- a key longer than 1024 bytes cannot be cached, so it is skipped
SELECT pg_temp.seed('users:by_id:5', 'users:by_name:dee');
UPDATE users SET name = repeat('x', 2000) WHERE user_id = 5;
SELECT pg_temp.present('users:by_id:5', 'users:by_name:dee');
UPDATE users SET name = 'dee' WHERE user_id = 5;

-- many rows in one statement
SELECT pg_temp.seed('users:by_id:1', 'users:by_id:3', 'users:by_id:5',
                    'users:by_id:6', 'users:other');
UPDATE users SET name = name;
SELECT pg_temp.present('users:by_id:1', 'users:by_id:3', 'users:by_id:5',
                       'users:by_id:6', 'users:other');

-- a rolled-back write still invalidated (at once): nothing stale remains
SELECT pg_temp.seed('users:by_id:1', 'users:by_id:3');
BEGIN;
UPDATE users SET name = 'zed' WHERE user_id = 1;
SELECT pg_temp.present('users:by_id:1', 'users:by_id:3');
ROLLBACK;
SELECT pg_temp.present('users:by_id:1', 'users:by_id:3');

-- TRUNCATE: every prefix, and every template up to its first placeholder
SELECT pg_temp.seed('users:all', 'users:by_id:1', 'users:by_id:99',
                    'org:10:user:1', 'org:', 'users:by_name:anyone',
                    'users:other', 'orders:x');
TRUNCATE users;
SELECT pg_temp.present('users:all', 'users:by_id:1', 'users:by_id:99',
                       'org:10:user:1', 'org:', 'users:by_name:anyone',
                       'users:other', 'orders:x');

-- with templates only, there is no statement trigger: a statement trigger
-- would invalidate the whole "users:by_id:" namespace
SELECT cache_attach('users', 'users:by_id:{user_id}');
SELECT * FROM pg_temp.triggers('users');
SELECT pg_temp.seed('users:by_id:7', 'users:by_id:8', 'users:all');
INSERT INTO users VALUES (7, 'gus', 10);
SELECT pg_temp.present('users:by_id:7', 'users:by_id:8', 'users:all');

-- with prefixes only, there is no row trigger but for replication
SELECT cache_attach('users', 'users:', 'teams:');
SELECT * FROM pg_temp.triggers('users');
SELECT pg_temp.seed('users:by_id:7', 'teams:1', 'orders:x');
DELETE FROM users WHERE user_id = 7;
SELECT pg_temp.present('users:by_id:7', 'teams:1', 'orders:x');

-- an empty VARIADIC array means the default target, like no targets
SELECT cache_attach('users', VARIADIC '{}'::text[]);
SELECT * FROM pg_temp.triggers('users');

-- targets are quoted as they must be; names in templates match exactly
CREATE TABLE "Odd Table" ("Id" int, "it's" text);
SELECT cache_attach('"Odd Table"', 'odd:{Id}:{it''s}', E'back\\slash:');
SELECT * FROM pg_temp.triggers('"Odd Table"');
SELECT pg_temp.seed('odd:1:o''k', E'back\\slash:1', 'Odd Table:1');
INSERT INTO "Odd Table" VALUES (1, 'o''k');
SELECT pg_temp.present('odd:1:o''k', E'back\\slash:1', 'Odd Table:1');
-- the default target is the bare table name, without schema or quotes
SELECT cache_attach('"Odd Table"');
SELECT pg_temp.seed('Odd Table:1', 'odd:1:o''k');
DELETE FROM "Odd Table";
SELECT pg_temp.present('Odd Table:1', 'odd:1:o''k');

----------------------------------------------------------------------
-- bad targets: an error at attach time, and the triggers are unchanged
----------------------------------------------------------------------
SELECT cache_attach('users', 'users:', 'users:by_id:{user_id}');
SELECT pg_temp.err($$SELECT cache_attach('users', 'users:by_id:{id}')$$);
SELECT pg_temp.err($$SELECT cache_attach('users', 'users:{User_Id}')$$);
SELECT pg_temp.err($$SELECT cache_attach('users', 'users:', '')$$);
SELECT pg_temp.err($$SELECT cache_attach('users', 'users:by_id:{user_id')$$);
SELECT pg_temp.err($$SELECT cache_attach('users', 'users:{}')$$);
SELECT pg_temp.err($$SELECT cache_attach('users', '{user_id}')$$);
SELECT pg_temp.err($$SELECT cache_attach('users', repeat('u', 1025))$$);
SELECT pg_temp.err($$SELECT cache_attach('no_such_table')$$);
CREATE VIEW users_view AS SELECT * FROM users;
SELECT pg_temp.err($$SELECT cache_attach('users_view')$$);
SELECT * FROM pg_temp.triggers('users');
-- a NULL table or target does nothing
SELECT cache_attach(NULL) IS NULL AS attach_null;
SELECT cache_attach('users', 'other:', NULL) IS NULL AS attach_null_target;
SELECT tgname, tgnargs FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal ORDER BY 1;
SELECT cache_detach(NULL) IS NULL AS detach_null;

----------------------------------------------------------------------
-- triggers made by hand: the trigger function checks its arguments too
----------------------------------------------------------------------
CREATE TABLE hand (id int, v text);
CREATE TRIGGER t AFTER INSERT ON hand
    FOR EACH ROW EXECUTE FUNCTION cache_invalidate('hand:{nope}');
SELECT pg_temp.err($$INSERT INTO hand VALUES (1, 'a')$$);
DROP TRIGGER t ON hand;
CREATE TRIGGER t AFTER INSERT ON hand
    FOR EACH STATEMENT EXECUTE FUNCTION cache_invalidate('hand:{id');
SELECT pg_temp.err($$INSERT INTO hand VALUES (1, 'a')$$);
DROP TRIGGER t ON hand;
CREATE TRIGGER t AFTER INSERT ON hand
    FOR EACH STATEMENT EXECUTE FUNCTION cache_invalidate();
SELECT pg_temp.err($$INSERT INTO hand VALUES (1, 'a')$$);
DROP TRIGGER t ON hand;
-- every target at every level: a row trigger invalidates its prefixes
-- (once per statement), a statement trigger its templates up to their
-- first placeholder
CREATE TRIGGER t AFTER INSERT ON hand
    FOR EACH ROW EXECUTE FUNCTION cache_invalidate('hand:');
SELECT pg_temp.seed('hand:1', 'hand:2', 'other:1');
SELECT pg_temp.err($$INSERT INTO hand VALUES (1, 'a'), (2, 'b')$$);
SELECT pg_temp.present('hand:1', 'hand:2', 'other:1');
DROP TRIGGER t ON hand;
CREATE TRIGGER t AFTER INSERT ON hand
    FOR EACH STATEMENT EXECUTE FUNCTION cache_invalidate('hand:by_id:{id}');
SELECT pg_temp.seed('hand:by_id:1', 'hand:by_id:99', 'hand:other');
INSERT INTO hand VALUES (3, 'c');
SELECT pg_temp.present('hand:by_id:1', 'hand:by_id:99', 'hand:other');
-- even when no row was written (a statement trigger cannot tell)
SELECT pg_temp.seed('hand:by_id:1');
INSERT INTO hand SELECT 4, 'd' WHERE false;
SELECT pg_temp.present('hand:by_id:1');
DROP TRIGGER t ON hand;
-- one row trigger with both kinds
CREATE TRIGGER t AFTER UPDATE ON hand
    FOR EACH ROW EXECUTE FUNCTION cache_invalidate('hand:list', 'hand:by_id:{id}');
SELECT pg_temp.seed('hand:list', 'hand:list:2', 'hand:by_id:1', 'hand:by_id:2', 'hand:by_id:3');
UPDATE hand SET v = v WHERE id IN (1, 2);
SELECT pg_temp.present('hand:list', 'hand:list:2', 'hand:by_id:1', 'hand:by_id:2', 'hand:by_id:3');
DROP TRIGGER t ON hand;
DELETE FROM hand;
CREATE TRIGGER t BEFORE INSERT ON hand
    FOR EACH ROW EXECUTE FUNCTION cache_invalidate('hand:{id}');
SELECT pg_temp.err($$INSERT INTO hand VALUES (1, 'a')$$);
DROP TRIGGER t ON hand;
-- a correct one works
CREATE TRIGGER t AFTER INSERT ON hand
    FOR EACH ROW EXECUTE FUNCTION cache_invalidate('hand:{id}:{v}');
SELECT pg_temp.seed('hand:1:a', 'hand:2:a');
INSERT INTO hand VALUES (1, 'a');
SELECT pg_temp.present('hand:1:a', 'hand:2:a');
DROP TABLE hand;

----------------------------------------------------------------------
-- cache_detach: the triggers go, and writes no longer invalidate
----------------------------------------------------------------------
SELECT cache_detach('users');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal ORDER BY 1;
SELECT pg_temp.seed('users:all', 'users:by_id:8');
INSERT INTO users VALUES (8, 'hal', 10);
SELECT pg_temp.present('users:all', 'users:by_id:8');
-- detaching a table that has no cache_ext triggers is only a NOTICE
SELECT cache_detach('users');

-- dropping a table drops its triggers, and its rows: its targets go, as
-- with TRUNCATE
CREATE TABLE gone (id int);
SELECT cache_attach('gone', 'gone:', 'gone:{id}');
SELECT count(*) AS gone_triggers FROM pg_trigger WHERE tgrelid = 'gone'::regclass;
SELECT 'gone'::regclass::oid AS gone_oid \gset
SELECT pg_temp.seed('gone:1', 'gone:list', 'other:1');
DROP TABLE gone;
SELECT pg_temp.present('gone:1', 'gone:list', 'other:1');
SELECT count(*) AS gone_triggers FROM pg_trigger WHERE tgrelid = :gone_oid;

----------------------------------------------------------------------
-- write-through: the row as JSON under its key, stored at commit
----------------------------------------------------------------------
CREATE TABLE products (id int PRIMARY KEY, name text, price numeric);
SELECT cache_attach_write_through('products', 'product:{id}', 0);
SELECT * FROM pg_temp.triggers('products');

INSERT INTO products VALUES (1, 'pen', 1.50), (2, 'ink', 7);
SELECT cache_get('product:1') AS product_1, cache_get('product:2') AS product_2;
SELECT cache_ttl('product:1') AS ttl_never;

UPDATE products SET price = 1.75 WHERE id = 1;
SELECT cache_get('product:1') AS product_1, cache_get('product:2') AS product_2;

-- a changed key: the old key goes, the new one holds the row
UPDATE products SET id = 3 WHERE id = 2;
SELECT pg_temp.present('product:2', 'product:3');
SELECT cache_get('product:3') AS product_3;

DELETE FROM products WHERE id = 1;
SELECT pg_temp.present('product:1', 'product:3');

-- in the writing transaction the value is pending: visible to it, and
-- gone with a rollback
BEGIN;
INSERT INTO products VALUES (4, 'pad', 3);
SELECT cache_get('product:4') AS pending_product_4;
ROLLBACK;
SELECT pg_temp.present('product:4');

-- and with a rollback to a savepoint
BEGIN;
INSERT INTO products VALUES (5, 'cap', 2);
SAVEPOINT s;
INSERT INTO products VALUES (6, 'nib', 1);
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT pg_temp.present('product:5', 'product:6');

-- a value too large to store does not leave the previous one behind
SET cache_ext.max_value_size = 10;
UPDATE products SET name = 'cap, blue' WHERE id = 5;
RESET cache_ext.max_value_size;
SELECT pg_temp.present('product:5', 'product:3');

-- TRUNCATE clears the template's prefix
TRUNCATE products;
SELECT pg_temp.present('product:3', 'product:5');

-- attaching again replaces; no ttl means cache_ext.default_ttl, read when
-- the trigger fires; a NULL key column stores nothing
SELECT cache_attach_write_through('products', 'product:by_name:{name}');
SELECT * FROM pg_temp.triggers('products');
SET cache_ext.default_ttl = 1000;
INSERT INTO products VALUES (7, 'pen', 1), (8, NULL, 2);
RESET cache_ext.default_ttl;
SELECT cache_get('product:by_name:pen') AS by_name_pen,
       cache_ttl('product:by_name:pen') BETWEEN 900 AND 1000 AS default_ttl_used;
SELECT pg_temp.present('product:by_name:', 'product:by_name:NULL');

-- bad write-through arguments
SELECT pg_temp.err($$SELECT cache_attach_write_through('products', 'product:')$$);
SELECT pg_temp.err($$SELECT cache_attach_write_through('products', 'product:{sku}')$$);
SELECT pg_temp.err($$SELECT cache_attach_write_through('products', 'product:{id}', -1)$$);
SELECT pg_temp.err($$SELECT cache_attach_write_through('products', '{id}')$$);
SELECT cache_attach_write_through(NULL, 'product:{id}') IS NULL AS wt_null_table;
SELECT cache_attach_write_through('products', NULL) IS NULL AS wt_null_template;
CREATE TABLE hand (id int);
CREATE TRIGGER t AFTER INSERT ON hand
    FOR EACH ROW EXECUTE FUNCTION cache_write_through('hand:{id}', 'soon');
SELECT pg_temp.err($$INSERT INTO hand VALUES (1)$$);
DROP TRIGGER t ON hand;
CREATE TRIGGER t AFTER INSERT ON hand
    FOR EACH ROW EXECUTE FUNCTION cache_write_through('hand:{id}', '10', 'x');
SELECT pg_temp.err($$INSERT INTO hand VALUES (1)$$);
DROP TRIGGER t ON hand;
CREATE TRIGGER t AFTER INSERT ON hand
    FOR EACH STATEMENT EXECUTE FUNCTION cache_write_through('hand:{id}');
SELECT pg_temp.err($$INSERT INTO hand VALUES (1)$$);
DROP TABLE hand;

-- with invalidation on the same table, the row trigger invalidates first
-- (triggers fire in name order), then write-through stores the new row
SELECT cache_attach('products', 'product:by_name:{name}', 'products:list:');
SELECT pg_temp.seed('products:list:all');
UPDATE products SET price = 3 WHERE name = 'pen';
SELECT cache_get('product:by_name:pen') AS by_name_pen;
SELECT pg_temp.present('products:list:all');

-- a prefix that covers the write-through keys (its statement trigger fires
-- after the row triggers) does not undo the stored row image
SELECT cache_attach('products', 'product:');
UPDATE products SET price = 4 WHERE name = 'pen';
SELECT cache_get('product:by_name:pen') AS by_name_pen_after_prefix;
BEGIN;
UPDATE products SET price = 5 WHERE name = 'pen';
SELECT cache_get('product:by_name:pen') AS own_view_keeps_row_image;
COMMIT;
SELECT cache_get('product:by_name:pen') AS by_name_pen_committed;
-- but deleting the row removes it
DELETE FROM products WHERE name = 'pen';
SELECT pg_temp.present('product:by_name:pen');

-- a TRUNCATE or an explicit invalidation later in the same transaction
-- does remove the row images
CREATE TABLE wt2 (id int PRIMARY KEY, v text);
SELECT cache_attach_write_through('wt2', 'wt2:{id}', 0);
BEGIN;
INSERT INTO wt2 VALUES (1, 'a');
TRUNCATE wt2;
SELECT cache_get('wt2:1') IS NULL AS own_view_after_truncate;
COMMIT;
SELECT cache_get('wt2:1') IS NULL AS truncated_row_image_gone;
BEGIN;
INSERT INTO wt2 VALUES (2, 'b');
SELECT cache_invalidate_prefix('wt2:') >= 0 AS invalidated;
COMMIT;
SELECT cache_get('wt2:2') IS NULL AS invalidated_row_image_gone;
DROP TABLE wt2;

-- cache_detach drops the write-through triggers too
SELECT tgname FROM pg_trigger WHERE tgrelid = 'products'::regclass AND NOT tgisinternal ORDER BY 1;
SELECT cache_detach('products');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'products'::regclass AND NOT tgisinternal ORDER BY 1;
INSERT INTO products VALUES (9, 'mug', 5);
SELECT pg_temp.present('product:by_name:mug');

-- only the table's owner may copy its rows into the cache
CREATE ROLE regress_cache_trigger_user;
GRANT TRIGGER ON products TO regress_cache_trigger_user;
SET ROLE regress_cache_trigger_user;
SELECT pg_temp.err($$SELECT cache_attach_write_through('products', 'product:{id}')$$);
RESET ROLE;

----------------------------------------------------------------------
-- session_replication_role = replica (what logical replication's apply
-- worker runs with) skips ordinary triggers; cache_ext's fire ALWAYS
----------------------------------------------------------------------
SELECT cache_attach('users', 'users:', 'users:by_id:{user_id}');
INSERT INTO users VALUES (1, 'ann', 10), (2, 'bob', 20);
SELECT pg_temp.seed('users:list', 'users:by_id:1', 'users:by_id:2', 'orders:x');
SET session_replication_role = replica;
UPDATE users SET name = 'ann' WHERE user_id = 1;
RESET session_replication_role;
SELECT pg_temp.present('users:list', 'users:by_id:1', 'users:by_id:2', 'orders:x');
SELECT pg_temp.seed('users:list', 'users:by_id:1', 'users:by_id:2');
SET session_replication_role = replica;
TRUNCATE users;
RESET session_replication_role;
SELECT pg_temp.present('users:list', 'users:by_id:1', 'users:by_id:2');
-- write-through too: a replicated change must not leave the old row image
SELECT cache_attach_write_through('products', 'product:by_name:{name}', 0);
SET session_replication_role = replica;
INSERT INTO products VALUES (10, 'cup', 1);
UPDATE products SET price = 2 WHERE id = 10;
RESET session_replication_role;
SELECT cache_get('product:by_name:cup') AS replicated_row_image;

-- a role allowed to create triggers (not the owner) can attach: that the
-- triggers fire always is part of attaching
GRANT TRIGGER ON users TO regress_cache_trigger_user;
SET ROLE regress_cache_trigger_user;
SELECT cache_attach('users', 'users:', 'users:by_id:{user_id}');
RESET ROLE;
SELECT * FROM pg_temp.triggers('users');

----------------------------------------------------------------------
-- a foreign table: no TRUNCATE trigger (it cannot have one)
----------------------------------------------------------------------
CREATE FOREIGN DATA WRAPPER cache_regress_fdw;
CREATE SERVER cache_regress_server FOREIGN DATA WRAPPER cache_regress_fdw;
CREATE FOREIGN TABLE remote_users (user_id int, name text) SERVER cache_regress_server;
SELECT cache_attach('remote_users', 'remote:', 'remote:{user_id}');
SELECT * FROM pg_temp.triggers('remote_users');
SELECT cache_detach('remote_users');
DROP FOREIGN TABLE remote_users;
DROP SERVER cache_regress_server;
DROP FOREIGN DATA WRAPPER cache_regress_fdw;

----------------------------------------------------------------------
-- schema changes: a column that a template names cannot be dropped or
-- renamed (every later write would fail); the error names the template,
-- the trigger and the table, and the change is rolled back
----------------------------------------------------------------------
SELECT cache_attach('users', 'users:', 'users:by_id:{user_id}', 'users:by_org:{org_id}');
ALTER TABLE users RENAME COLUMN user_id TO id;
-- CASCADE drops the view that uses the column, not the check
ALTER TABLE users DROP COLUMN org_id CASCADE;
DROP VIEW users_view;
ALTER TABLE users DROP COLUMN org_id;
ALTER TABLE users ADD COLUMN extra int, DROP COLUMN org_id;
SELECT pg_temp.err($$ALTER TABLE users RENAME user_id TO id$$);
SELECT attname FROM pg_attribute
WHERE attrelid = 'users'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
-- writes still work and still invalidate
SELECT pg_temp.seed('users:by_id:3', 'users:by_org:30');
INSERT INTO users VALUES (3, 'cy', 30);
SELECT pg_temp.present('users:by_id:3', 'users:by_org:30');
-- columns no template names are free to change; dropping a column and
-- adding it back in one command leaves the template valid
ALTER TABLE users RENAME COLUMN name TO full_name;
ALTER TABLE users DROP COLUMN org_id, ADD COLUMN org_id int;
ALTER TABLE users RENAME COLUMN full_name TO name;
-- the way to rename: detach, rename, attach again, in one transaction
BEGIN;
SELECT cache_detach('users');
ALTER TABLE users RENAME COLUMN user_id TO id;
SELECT cache_attach('users', 'users:', 'users:by_id:{id}');
COMMIT;
SELECT pg_temp.seed('users:by_id:3');
UPDATE users SET name = 'cyd' WHERE id = 3;
SELECT pg_temp.present('users:by_id:3');
-- write-through templates and hand-made triggers are checked too
ALTER TABLE products RENAME COLUMN name TO title;
CREATE TABLE hand (id int, v text);
CREATE TRIGGER t AFTER INSERT ON hand
    FOR EACH ROW EXECUTE FUNCTION cache_invalidate('hand:{v}');
ALTER TABLE hand DROP COLUMN v;
DROP TABLE hand;

DROP TABLE users, "Odd Table", products CASCADE;
DROP ROLE regress_cache_trigger_user;
