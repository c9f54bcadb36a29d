\set id random(1, 100000)
SELECT id, name, email, created_at FROM users WHERE id = :id;
