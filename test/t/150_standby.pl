# Hot standbys (issue 15): with cache_ext.wal_invalidations on, the
# primary's invalidations travel in its WAL and a streaming standby applies
# them where the writing transaction becomes visible there.
#
#   1. the issue's scenario on the shared-memory store of each server: a
#      standby's cached result follows the primary's UPDATE once replayed;
#   2. the same with Redis shared by both: a standby whose replay is paused
#      stores the old row into Redis after the primary's invalidation; once
#      it has replayed the write, Redis no longer holds it;
#   3. a standby reader whose snapshot predates the write cannot store the
#      old row once the write is replayed (both stores);
#   4. promotion keeps the promoted server's cache coherent, before and after
#      its own first writes;
#   5. a standby restarted (immediate shutdown) during a write load: its
#      cached results match its own data afterwards.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

require "$FindBin::Bin/120_lib.pm";

my $redis = RedisServer->new();
my $url = 'redis://127.0.0.1:' . $redis->port . '/0';

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
cache_ext.redis_url = '$url'
cache_ext.wal_invalidations = on
max_standby_streaming_delay = -1
});
$primary->start;
$primary->safe_psql('postgres', q{
CREATE EXTENSION cache_ext;
CREATE TABLE users (user_id int PRIMARY KEY, name text);
INSERT INTO users VALUES (1, 'Ada'), (2, 'Alan');
SELECT cache_attach('users', 'users:all', 'users:by_id:{user_id}');
});
$primary->backup('b1');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b1', has_streaming => 1);
$standby->start;

my $all = q{SELECT cache_fetch('users:all', 'SELECT name FROM users ORDER BY user_id', 600)};

sub sync_standby
{
	$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
}

sub on
{
	my ($node, $backend, $sql) = @_;
	return $node->safe_psql('postgres', "SET cache_ext.backend = $backend; $sql");
}

# a Redis value, JSON spacing removed ('' when absent)
sub redis_get
{
	my $v = $redis->cli('GET', $_[0]) // '';
	$v =~ s/\s+//g;
	return $v;
}

# ---- 1: the issue's scenario, shared-memory store on each server ----

sync_standby();
is(on($standby, 'shmem', $all), '[{"name": "Ada"}, {"name": "Alan"}]',
	'shmem: the standby caches its result');
$primary->safe_psql('postgres', q{UPDATE users SET name = 'Grace' WHERE user_id = 1});
sync_standby();
is($standby->safe_psql('postgres', 'SELECT name FROM users WHERE user_id = 1'),
	'Grace', 'the standby has replayed the UPDATE');
is(on($standby, 'shmem', $all), '[{"name": "Grace"}, {"name": "Alan"}]',
	'shmem: once replayed, the standby serves the new row, not its cached result');

# ---- 2: Redis shared by both, a standby reader that lags ----

on($primary, 'redis', 'SELECT cache_flush()');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$primary->safe_psql('postgres', q{UPDATE users SET name = 'Hopper' WHERE user_id = 1});
is(on($standby, 'redis', $all), '[{"name": "Grace"}, {"name": "Alan"}]',
	'redis: the paused standby computes its result from its old rows');
is(redis_get('users:all'), '[{"name":"Grace"},{"name":"Alan"}]',
	'redis: and stores it, after the primary invalidated the key');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
sync_standby();
is(on($standby, 'redis', $all), '[{"name": "Hopper"}, {"name": "Alan"}]',
	'redis: once replayed, the standby serves the new row');
ok(CacheTest::poll(15, sub { redis_get('users:all') !~ /Grace/ }),
	'redis: the old result does not survive in Redis once the standby replayed the write');
is(on($primary, 'redis', $all), '[{"name": "Hopper"}, {"name": "Alan"}]',
	'redis: the primary does not serve it either');

# ---- 3: a reader whose snapshot predates the write, on both stores ----

for my $backend ('shmem', 'redis')
{
	my $s = CacheTest::session($standby, backend => $backend);
	my $before = $primary->safe_psql('postgres', 'SELECT name FROM users WHERE user_id = 2');
	$s->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	is($s->query_safe('SELECT name FROM users WHERE user_id = 2'), $before,
		"$backend: the reader's snapshot has the old row");
	$s->query_safe(q{SELECT cache_delete('users:by_id:2')});
	is($s->query_safe(q{SELECT cache_get('users:by_id:2') IS NULL}), 't',
		"$backend: the reader misses");
	$primary->safe_psql('postgres',
		"UPDATE users SET name = 'new-$backend' WHERE user_id = 2");
	sync_standby();
	is($s->query_safe(
			q{SELECT cache_set('users:by_id:2', (SELECT name FROM users WHERE user_id = 2))}),
		'f', "$backend: its set of the old row is refused once the write is replayed");
	$s->query_safe('COMMIT');
	my $got = on($standby, $backend, q{SELECT coalesce(cache_get('users:by_id:2'), '<miss>')});
	ok($got eq '<miss>' || $got eq "new-$backend",
		"$backend: the key holds no old row afterwards ($got)");
	$s->quit;
}

# ---- 5: a standby restarted during the load ----

my $load = CacheTest::session($primary);
CacheTest::start($load, q{
DO $$
BEGIN
  FOR i IN 1..400 LOOP
    UPDATE users SET name = 'load' || i WHERE user_id = 1 + i % 2;
    COMMIT;
    PERFORM pg_sleep(0.005);
  END LOOP;
END $$});
my $deadline = time() + 2;
my $n = 0;
while (time() < $deadline)
{
	on($standby, $n % 2 ? 'redis' : 'shmem', $all);
	on($standby, 'redis', q{SELECT cache_fetch('users:by_id:1', 'SELECT name FROM users WHERE user_id = 1', 600)});
	$n++;
}
$standby->stop('immediate');
$standby->start;
$deadline = time() + 1;
while (time() < $deadline)
{
	on($standby, $n % 2 ? 'redis' : 'shmem', $all);
	on($standby, 'redis', q{SELECT cache_fetch('users:by_id:1', 'SELECT name FROM users WHERE user_id = 1', 600)});
	$n++;
}
my ($fin) = CacheTest::wait_done($load, 120);
ok($fin, 'the write load finished');
$load->quit;
sync_standby();
my $want = $standby->safe_psql('postgres',
	q{SELECT json_agg(json_build_object('name', name) ORDER BY user_id)::jsonb FROM users});
for my $backend ('shmem', 'redis')
{
	is(on($standby, $backend, $all), $want,
		"$backend: after a restart during the load, the standby's result matches its data");
}
ok(CacheTest::poll(15, sub {
	my $v = redis_get('users:by_id:1');
	$v eq '' || $v eq $standby->safe_psql('postgres',
		q{SELECT replace(json_agg(json_build_object('name', name))::jsonb::text, ' ', '') FROM users WHERE user_id = 1});
}), 'redis: no old row of the load stays in Redis');

# ---- 4: promotion ----

sync_standby();
is(on($standby, 'shmem', $all), $want, 'shmem: cached before promotion');
$primary->safe_psql('postgres', q{UPDATE users SET name = 'Lovelace' WHERE user_id = 1});
sync_standby();
$primary->stop;
$standby->promote;
is(on($standby, 'shmem', $all), '[{"name": "Lovelace"}, {"name": "' .
	$standby->safe_psql('postgres', 'SELECT name FROM users WHERE user_id = 2') . '"}]',
	'shmem: after promotion, the last replayed write is visible in the cache');
$standby->safe_psql('postgres', q{UPDATE users SET name = 'Turing' WHERE user_id = 1});
like(on($standby, 'shmem', $all), qr/"Turing"/,
	'shmem: the promoted server invalidates on its own writes');
like(on($standby, 'redis', $all), qr/"Turing"/,
	'redis: the promoted server serves its own writes');
ok(CacheTest::poll(15, sub { (CacheTest::queued($standby) // -1) == 0 }),
	'the promoted server delivers its queue');

$standby->stop;
done_testing();
