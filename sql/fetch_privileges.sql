--
-- fetch_privileges: a cache_fetch hit never reveals rows that the caller
-- could not read by running the query itself.  A hit checks the caller's
-- privileges on what the query reads (the error is the query's own); under
-- row-level security or column privileges the rows depend on the role, so
-- cache_fetch runs the query and neither uses nor stores the cached value.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
RESET client_min_messages;
SELECT cache_flush() >= 0 AS flushed;

-- every role calls it (a temporary function would need pg_temp's USAGE)
CREATE FUNCTION fp_err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE ROLE regress_cf_owner;
CREATE ROLE regress_cf_app;
CREATE ROLE regress_cf_none;
CREATE ROLE regress_cf_rls;
CREATE ROLE regress_cf_col;

-- fp_items: no RLS; the application role may read it, one role only two
-- of its columns, one role not at all
CREATE TABLE fp_items (id int PRIMARY KEY, name text, secret text);
INSERT INTO fp_items VALUES (1, 'apple', 's1'), (2, 'pear', 's2');
ALTER TABLE fp_items OWNER TO regress_cf_owner;
GRANT SELECT ON fp_items TO regress_cf_app;
GRANT SELECT (id, name) ON fp_items TO regress_cf_col;

-- fp_names: a view owned by the owner; the role without SELECT on
-- fp_items may read it, the table under it is read with the owner's rights
CREATE VIEW fp_names AS SELECT id, name FROM fp_items;
ALTER VIEW fp_names OWNER TO regress_cf_owner;
GRANT SELECT ON fp_names TO regress_cf_none;

-- fp_docs: row-level security, each reader sees its own rows
CREATE TABLE fp_docs (id int PRIMARY KEY, reader text, body text);
INSERT INTO fp_docs VALUES (1, 'regress_cf_rls', 'mine'), (2, 'someone_else', 'theirs');
ALTER TABLE fp_docs OWNER TO regress_cf_owner;
ALTER TABLE fp_docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY fp_docs_own ON fp_docs FOR SELECT USING (reader = current_user);
GRANT SELECT ON fp_docs TO regress_cf_rls;

-- the owner caches both; then changes a row without invalidating, so
-- that a hit is visible as the old rows
SET ROLE regress_cf_owner;
SELECT cache_fetch('fp:items', 'SELECT id, name FROM fp_items ORDER BY id') AS owner_miss;
SELECT cache_fetch('fp:docs', 'SELECT id, body FROM fp_docs ORDER BY id') AS owner_miss;
SELECT cache_fetch('fp:item', 'SELECT id, name FROM fp_items WHERE id = $1', NULL, 1) AS owner_miss;
SELECT cache_fetch('fp:names', 'SELECT name FROM fp_names WHERE id = 1') AS owner_miss;
SELECT cache_fetch('fp:cte', 'WITH c AS (SELECT name FROM fp_items WHERE id = 1) SELECT name FROM fp_names WHERE name IN (SELECT name FROM c)') AS owner_miss;
UPDATE fp_items SET name = 'APPLE' WHERE id = 1;
RESET ROLE;

-- the application role may read fp_items: it hits the owner's value
SET ROLE regress_cf_app;
SELECT cache_fetch('fp:items', 'SELECT id, name FROM fp_items ORDER BY id') AS app_hit;
SELECT cache_fetch('fp:item', 'SELECT id, name FROM fp_items WHERE id = $1', NULL, 1) AS app_hit;
RESET ROLE;

-- a role without SELECT gets the query's own error, not the rows
SET ROLE regress_cf_none;
SELECT fp_err($$SELECT cache_fetch('fp:items', 'SELECT id, name FROM fp_items ORDER BY id')$$) AS none_items;
SELECT fp_err($$SELECT cache_fetch('fp:item', 'SELECT id, name FROM fp_items WHERE id = $1', NULL, 1)$$) AS none_item;
SELECT fp_err($$SELECT cache_fetch('fp:docs', 'SELECT id, body FROM fp_docs ORDER BY id')$$) AS none_docs;
-- ... wherever the query reads the table: a subquery, a CTE; a view that
-- it may read is fine
SELECT fp_err($$SELECT cache_fetch('fp:items', 'SELECT * FROM (SELECT id, name FROM fp_items) s WHERE id IN (SELECT id FROM fp_items)')$$) AS none_subquery;
SELECT fp_err($$SELECT cache_fetch('fp:cte', 'WITH c AS (SELECT name FROM fp_items WHERE id = 1) SELECT name FROM fp_names WHERE name IN (SELECT name FROM c)')$$) AS none_cte;
SELECT cache_fetch('fp:names', 'SELECT name FROM fp_names WHERE id = 1') AS none_view_hit;
RESET ROLE;

-- under RLS: only the role's own rows, and they are not stored
SET ROLE regress_cf_rls;
SELECT cache_fetch('fp:docs', 'SELECT id, body FROM fp_docs ORDER BY id') AS rls_rows;
SELECT cache_fetch('fp:docs', 'SELECT id, body FROM fp_docs ORDER BY id') AS rls_again;
SELECT cache_fetch('fp:docs:rls', 'SELECT id, body FROM fp_docs ORDER BY id') AS rls_new_key;
SELECT cache_get('fp:docs:rls') IS NULL AS rls_not_stored;
RESET ROLE;
SET ROLE regress_cf_owner;
SELECT cache_fetch('fp:docs', 'SELECT 1/0') AS owner_hit_own;
SELECT cache_get('fp:docs')::jsonb AS still_cached;
RESET ROLE;

-- column privileges only: the role's own result, not the cached one, and
-- not stored
SET ROLE regress_cf_col;
SELECT cache_fetch('fp:items', 'SELECT id, name FROM fp_items ORDER BY id') AS col_rows;
SELECT fp_err($$SELECT cache_fetch('fp:items:star', 'SELECT * FROM fp_items')$$) AS col_star;
SELECT cache_fetch('fp:items:col', 'SELECT id, name FROM fp_items ORDER BY id') IS NOT NULL AS col_new_key,
       cache_get('fp:items:col') IS NULL AS col_not_stored;
RESET ROLE;
SET ROLE regress_cf_owner;
SELECT cache_fetch('fp:items', 'SELECT id, name FROM fp_items ORDER BY id') AS owner_hit_own;
RESET ROLE;

-- privileges are checked on every hit, with the grants of the moment
GRANT SELECT ON fp_items TO regress_cf_none;
SET ROLE regress_cf_none;
SELECT cache_fetch('fp:items', 'SELECT id, name FROM fp_items ORDER BY id') AS granted_hit;
RESET ROLE;
REVOKE SELECT ON fp_items FROM regress_cf_app;
SET ROLE regress_cf_app;
SELECT fp_err($$SELECT cache_fetch('fp:items', 'SELECT id, name FROM fp_items ORDER BY id')$$) AS revoked;
RESET ROLE;
-- ... and role memberships
GRANT regress_cf_none TO regress_cf_app;
SET ROLE regress_cf_app;
SELECT cache_fetch('fp:items', 'SELECT id, name FROM fp_items ORDER BY id') AS member_hit;
RESET ROLE;
REVOKE regress_cf_none FROM regress_cf_app;
SET ROLE regress_cf_app;
SELECT fp_err($$SELECT cache_fetch('fp:items', 'SELECT id, name FROM fp_items ORDER BY id')$$) AS no_longer_member;
RESET ROLE;

-- a table dropped and created again under the same name: checked anew
DROP VIEW fp_names;
DROP TABLE fp_items;
CREATE TABLE fp_items (id int PRIMARY KEY, name text);
SET ROLE regress_cf_none;
SELECT fp_err($$SELECT cache_fetch('fp:items', 'SELECT id, name FROM fp_items ORDER BY id')$$) AS recreated;
RESET ROLE;
SELECT cache_fetch('fp:items', 'SELECT id, name FROM fp_items ORDER BY id') AS superuser_hit;

DROP TABLE fp_items;
DROP TABLE fp_docs;
DROP FUNCTION fp_err(text);
DROP ROLE regress_cf_owner, regress_cf_app, regress_cf_none, regress_cf_rls, regress_cf_col;
SELECT cache_flush() >= 0 AS flushed;
