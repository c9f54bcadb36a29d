-- A committed write: the row's version goes up by one.  Once the commit
-- has returned, the writer records the version as done: from then on no
-- reader may get an older one from the cache.
\set id random(1, 20)
UPDATE stress_items SET version = version + 1 WHERE id = :id RETURNING version \gset
INSERT INTO stress_done VALUES (:id, :version);
