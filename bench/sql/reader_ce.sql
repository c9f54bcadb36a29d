\set id random(1, 80000)
SELECT cache_get('q:' || :id);
