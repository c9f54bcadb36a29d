-- A committed write by a session on the other store (pgbench
-- -D other="'shmem'" or "'redis'"): which stores a write invalidates does
-- not depend on the writer's cache_ext.backend.
\set id random(1, 20)
BEGIN;
SELECT set_config('cache_ext.backend', :other, true);
UPDATE stress_items SET version = version + 1 WHERE id = :id RETURNING version \gset
COMMIT;
INSERT INTO stress_done VALUES (:id, :version);
