-- A committed write aimed at a partition of the attached partitioned
-- table, not at the table itself: it must invalidate all the same.
\set id random(1, 20)
\if :id <= 10
UPDATE stress_items_lo SET version = version + 1 WHERE id = :id RETURNING version \gset
\else
UPDATE stress_items_hi SET version = version + 1 WHERE id = :id RETURNING version \gset
\endif
INSERT INTO stress_done VALUES (:id, :version);
