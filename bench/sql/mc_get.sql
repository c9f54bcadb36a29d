\set id random(0, 9999)
SELECT memcache_get('k:' || :id);
