-- a committed write: the row's version goes up by one
\set id random(1, 20)
UPDATE stress_items SET version = version + 1 WHERE id = :id;
