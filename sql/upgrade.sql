--
-- upgrade: ALTER EXTENSION cache_ext UPDATE from 0.1 to 0.2.  The
-- triggers that cache_attach() and cache_attach_write_through() of 0.1
-- made are made again in the layout of 0.2, and writes still invalidate.
-- Runs last: it drops the extension and leaves it at the default version.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS cache_ext CASCADE;
CREATE EXTENSION cache_ext VERSION '0.1';
RESET client_min_messages;
SELECT extversion FROM pg_extension WHERE extname = 'cache_ext';

CREATE FUNCTION pg_temp.seed(VARIADIC keys text[]) RETURNS boolean
LANGUAGE sql AS $$
    SELECT bool_and(cache_set(k, 'v', 0)) FROM unnest(keys) AS k
$$;
CREATE FUNCTION pg_temp.present(VARIADIC keys text[]) RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(k, ' ' ORDER BY k COLLATE "C"), '(none)')
    FROM unnest(keys) AS k WHERE cache_ttl(k) IS NOT NULL
$$;
CREATE FUNCTION pg_temp.tree_triggers(tbl regclass)
RETURNS TABLE (tbl regclass, tgname name, fires "char", cloned boolean, def text)
LANGUAGE sql AS $$
    SELECT t.tgrelid::regclass, t.tgname, t.tgenabled, t.tgparentid <> 0,
           pg_get_triggerdef(t.oid)
    FROM (SELECT tbl AS relid, 0 AS level
          UNION SELECT relid, level FROM pg_partition_tree(tbl)) p
    JOIN pg_trigger t ON t.tgrelid = p.relid
    WHERE NOT t.tgisinternal
    ORDER BY p.level, t.tgrelid::regclass::text COLLATE "C", t.tgname
$$;

-- The triggers exactly as cache_attach() of 0.1 made them (the library
-- installed now is 0.2's, whose cache_attach() makes the new layout):
-- cache_invalidate_stmt and cache_invalidate_row with every target.
CREATE TABLE users (user_id int PRIMARY KEY, name text);
CREATE TRIGGER cache_invalidate_stmt
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION cache_invalidate('users:', 'users:by_id:{user_id}', E'it''s\\odd:');
CREATE TRIGGER cache_invalidate_row
    AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION cache_invalidate('users:', 'users:by_id:{user_id}', E'it''s\\odd:');
-- templates only: the statement trigger was for TRUNCATE alone
CREATE TABLE teams (team_id int PRIMARY KEY);
CREATE TRIGGER cache_invalidate_stmt AFTER TRUNCATE ON teams
    FOR EACH STATEMENT EXECUTE FUNCTION cache_invalidate('teams:{team_id}');
CREATE TRIGGER cache_invalidate_row AFTER INSERT OR UPDATE OR DELETE ON teams
    FOR EACH ROW EXECUTE FUNCTION cache_invalidate('teams:{team_id}');
-- a partitioned table: the statement trigger did not see writes aimed at
-- its partitions
CREATE TABLE events (id int, kind text) PARTITION BY LIST (kind);
CREATE TABLE events_a PARTITION OF events FOR VALUES IN ('a');
CREATE TRIGGER cache_invalidate_stmt
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION cache_invalidate('events:');
-- write-through
CREATE TABLE products (id int PRIMARY KEY, name text);
CREATE TRIGGER cache_write_through AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION cache_write_through('product:{id}', '0');
CREATE TRIGGER cache_write_through_truncate AFTER TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION cache_write_through('product:{id}', '0');
-- a hand-made trigger of another name is left alone
CREATE TABLE notes (id int);
CREATE TRIGGER mine AFTER INSERT ON notes
    FOR EACH STATEMENT EXECUTE FUNCTION cache_invalidate('notes:');
-- a 0.1 attachment that 0.1 let break: its template names a column that
-- was renamed since; it is left as it was, with a WARNING
CREATE TABLE broken (id int);
CREATE TRIGGER cache_invalidate_row AFTER INSERT ON broken
    FOR EACH ROW EXECUTE FUNCTION cache_invalidate('broken:{key}');

INSERT INTO users VALUES (1, 'ann');
SELECT pg_temp.seed('users:list', 'users:by_id:1', E'it''s\\odd:1', 'other:x');

ALTER EXTENSION cache_ext UPDATE TO '0.2';
SELECT extversion FROM pg_extension WHERE extname = 'cache_ext';

-- the new objects
SELECT evtname, evtevent, evtenabled, evttags FROM pg_event_trigger
WHERE evtname LIKE 'cache_ext%' ORDER BY 1;
SELECT proargnames FROM pg_proc WHERE oid = 'cache_stats()'::regprocedure;

-- the new layout
SELECT * FROM pg_temp.tree_triggers('users');
SELECT * FROM pg_temp.tree_triggers('teams');
SELECT * FROM pg_temp.tree_triggers('events');
SELECT * FROM pg_temp.tree_triggers('products');
SELECT * FROM pg_temp.tree_triggers('notes');
SELECT * FROM pg_temp.tree_triggers('broken');

-- a key filled before the update is still invalidated by a write
SELECT pg_temp.present('users:list', 'users:by_id:1', E'it''s\\odd:1', 'other:x');
UPDATE users SET name = 'ann' WHERE user_id = 1;
SELECT pg_temp.present('users:list', 'users:by_id:1', E'it''s\\odd:1', 'other:x');
-- and a write aimed at a partition now is too
SELECT pg_temp.seed('events:list');
INSERT INTO events_a VALUES (1, 'a');
SELECT pg_temp.present('events:list');
-- write-through still stores row images
INSERT INTO products VALUES (1, 'pen');
SELECT cache_get('product:1') AS product_1;

-- the event trigger works: a renamed template column is refused
ALTER TABLE users RENAME COLUMN user_id TO id;

-- cache_detach() removes the 0.1 names as the 0.2 ones
SELECT cache_detach('broken');
SELECT * FROM pg_temp.tree_triggers('broken');

DROP TABLE users, teams, events, products, notes, broken;

-- every function of the extension has a comment (\df+ shows it)
SELECT p.oid::regprocedure AS function_without_comment
FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'cache_ext')
  AND d.classid = 'pg_proc'::regclass
  AND obj_description(p.oid, 'pg_proc') IS NULL;

-- and every view (\dv+ shows it)
SELECT c.oid::regclass AS view_without_comment
FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'cache_ext')
  AND d.classid = 'pg_class'::regclass
  AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT count(*) AS views FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'cache_ext')
  AND d.classid = 'pg_class'::regclass AND c.relkind = 'v';
