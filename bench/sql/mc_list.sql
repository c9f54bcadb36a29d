SELECT memcache_get('page/users/1');
