SELECT cache_fetch('fetch/users/1', 'SELECT id, name, email, created_at FROM users ORDER BY created_at DESC, id LIMIT 1000');
