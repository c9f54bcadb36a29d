SELECT json_agg(u) FROM (SELECT id, name, email, created_at FROM users ORDER BY created_at DESC, id LIMIT 1000) u;
