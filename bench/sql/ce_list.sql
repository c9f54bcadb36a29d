SELECT cache_get('page/users/1');
