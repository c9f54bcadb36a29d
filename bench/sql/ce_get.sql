\set id random(0, 9999)
SELECT cache_get('k:' || :id);
