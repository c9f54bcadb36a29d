-- bench/sql/fill_shmem.sql: the values the workloads read from cache_ext's
-- shared-memory store (run by setup.sql, and again after a restart)
SELECT cache_flush();
SELECT count(cache_set('k:' || i, bench_v(), 3600)) FROM generate_series(0, 9999) i;
SELECT cache_set('page/users/1', bench_list_users(), 3600);
SELECT length(cache_fetch('fetch/users/1', 'SELECT id, name, email, created_at FROM users ORDER BY created_at DESC, id LIMIT 1000', 3600)::text);
