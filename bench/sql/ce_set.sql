\set id random(0, 9999)
SELECT cache_set('k:' || :id, 'user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value ', 3600);
