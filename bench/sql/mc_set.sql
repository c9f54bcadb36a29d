\set id random(0, 9999)
SELECT memcache_set('k:' || :id, 'user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value ', interval '1 hour');
