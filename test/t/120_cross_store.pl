# Which stores a write invalidates does not depend on the writing session's
# cache_ext.backend (issue 12): a session on the shared-memory store that
# writes to an attached table removes the Redis keys of the rows it changed,
# and a session on Redis removes the shared-memory ones, both at once and in
# the commit-time repeat; a stale set is refused whichever store the writer
# used.  Explicit calls act on the session's store only.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/120_lib.pm";

my $redis = RedisServer->new;
my $node = CacheTest::users_node('cross', $redis);

sub redis_has { return $redis->cli('EXISTS', $_[0]) eq '1'; }

my $shm = CacheTest::session($node, backend => 'shmem');
my $red = CacheTest::session($node, backend => 'redis');
my ($out, $err);

# ---- a shmem session's writes remove Redis keys ----

$redis->cli('SET', 'users:by_id:1', 'user1 (set by the application)');
$redis->cli('SET', 'users:by_id:2', 'user2');
$redis->cli('SET', 'users:all', '[...]');
$redis->cli('SET', 'other:1', 'unrelated');

($out, $err) = CacheTest::run($shm, q{UPDATE users SET name = 'one' WHERE user_id = 1});
is($err, '', 'a shmem session updates users without any message');
ok(!redis_has('users:by_id:1'), 'its UPDATE removed users:by_id:1 from Redis');
ok(!redis_has('users:all'), 'and the prefix users:all');
ok(redis_has('users:by_id:2'), 'a key of another row stays');
ok(redis_has('other:1'), 'and so does an unrelated key');

# the same through another session on the Redis store
$red->query_safe(q{SELECT cache_set('users:by_id:3', 'user3', 0)});
is($redis->cli('GET', 'users:by_id:3'), 'user3', 'a Redis session cached users:by_id:3');
CacheTest::run($shm, q{DELETE FROM users WHERE user_id = 3});
ok(!redis_has('users:by_id:3'), 'a DELETE by a shmem session removes it from Redis');
CacheTest::run($shm, q{INSERT INTO users VALUES (3, 'user3')});

$redis->cli('SET', 'users:by_id:4', 'cached before the row existed');
CacheTest::run($shm, q{INSERT INTO users VALUES (4, 'user4')});
ok(!redis_has('users:by_id:4'), 'an INSERT by a shmem session removes the new row\'s Redis key');

$redis->cli('SET', 'users:by_id:2', 'user2');
$redis->cli('SET', 'users:by_id:77', 'x');
CacheTest::run($shm, q{BEGIN; CREATE TEMP TABLE keep AS SELECT * FROM users; TRUNCATE users;
	INSERT INTO users SELECT * FROM keep; DROP TABLE keep; COMMIT});
ok(!redis_has('users:by_id:2') && !redis_has('users:by_id:77'),
	'a TRUNCATE by a shmem session removes every Redis key of the template');
ok(redis_has('other:1'), 'but not an unrelated key');

# ---- a Redis session's writes remove shared-memory keys ----

is($shm->query_safe(q{SELECT cache_set('users:by_id:1', 'one', 0)}), 't',
	'a shmem session caches users:by_id:1');
is($shm->query_safe(q{SELECT cache_set('users:all', '[all]', 0)}), 't',
	'and users:all');
is($shm->query_safe(q{SELECT cache_set('users:by_id:2', 'user2', 0)}), 't',
	'and users:by_id:2');
($out, $err) = CacheTest::run($red, q{UPDATE users SET name = 'uno' WHERE user_id = 1});
is($err, '', 'a Redis session updates users');
is($shm->query_safe(q{SELECT cache_get('users:by_id:1') IS NULL}), 't',
	'its UPDATE removed users:by_id:1 from shared memory');
is($shm->query_safe(q{SELECT cache_get('users:all') IS NULL}), 't',
	'and users:all');
is($shm->query_safe(q{SELECT cache_get('users:by_id:2')}), 'user2',
	'a key of another row stays');

$shm->query_safe(q{SELECT cache_set('users:by_id:5', 'early', 0)});
CacheTest::run($red, q{INSERT INTO users VALUES (5, 'user5')});
is($shm->query_safe(q{SELECT cache_get('users:by_id:5') IS NULL}), 't',
	'an INSERT by a Redis session removes the new row\'s shmem key');

# ---- the commit-time repeat covers the other store too ----

# a writer on shmem; while it is open, a reader on Redis still sees the old
# row and caches it; the writer's commit must remove that value
CacheTest::run($shm, q{BEGIN});
CacheTest::run($shm, q{UPDATE users SET name = 'two' WHERE user_id = 2});
is($red->query_safe(q{SELECT cache_get('users:by_id:2') IS NULL}), 't',
	'Redis reader: a miss while the shmem writer is open');
is( $red->query_safe(
		q{SELECT cache_set('users:by_id:2', (SELECT name FROM users WHERE user_id = 2), 0)}),
	't', 'it caches the row it sees (the old one) before the writer commits');
is($redis->cli('GET', 'users:by_id:2'), 'user2', 'Redis holds the old row');
CacheTest::run($shm, q{COMMIT});
ok(!redis_has('users:by_id:2'),
	'the shmem writer\'s commit removed the value cached from the old row from Redis');

# and the other way round
CacheTest::run($red, q{BEGIN});
CacheTest::run($red, q{UPDATE users SET name = 'dos' WHERE user_id = 2});
is($shm->query_safe(q{SELECT cache_get('users:by_id:2') IS NULL}), 't',
	'shmem reader: a miss while the Redis writer is open');
is( $shm->query_safe(
		q{SELECT cache_set('users:by_id:2', (SELECT name FROM users WHERE user_id = 2), 0)}),
	't', 'it caches the old row before the writer commits');
CacheTest::run($red, q{COMMIT});
is($shm->query_safe(q{SELECT cache_get('users:by_id:2') IS NULL}), 't',
	'the Redis writer\'s commit removed it from shared memory');

# ---- a stale set is refused whichever store the writer used ----

is($red->query_safe(q{SELECT cache_get('users:by_id:1') IS NULL}), 't',
	'Redis reader misses users:by_id:1');
my $old = $red->query_safe(q{SELECT name FROM users WHERE user_id = 1});
CacheTest::run($shm, q{UPDATE users SET name = 'one again' WHERE user_id = 1});
is($red->query_safe(qq{SELECT cache_set('users:by_id:1', '$old', 0)}), 'f',
	'its set of the row read before a shmem session\'s UPDATE committed is refused');
ok(!redis_has('users:by_id:1'), 'Redis holds no stale value');
is($red->query_safe(q{SELECT cache_get('users:by_id:1') IS NULL}), 't', 'a new miss');
is($red->query_safe(q{SELECT cache_set('users:by_id:1', 'one again', 0)}), 't',
	'then a set stores again');

is($shm->query_safe(q{SELECT cache_get('users:by_id:3') IS NULL}), 't',
	'shmem reader misses users:by_id:3');
CacheTest::run($red, q{UPDATE users SET name = 'three' WHERE user_id = 3});
is($shm->query_safe(q{SELECT cache_set('users:by_id:3', 'user3', 0)}), 'f',
	'its set of the row read before a Redis session\'s UPDATE committed is refused');
is($shm->query_safe(q{SELECT cache_get('users:by_id:3') IS NULL}), 't',
	'shared memory holds no stale value');

# ---- explicit calls act on the session's store only ----

$redis->cli('SET', 'explicit:1', 'r');
$shm->query_safe(q{SELECT cache_set('explicit:1', 's', 0)});
is($shm->query_safe(q{SELECT cache_delete('explicit:1')}), 't',
	'cache_delete in a shmem session removes the shmem key');
is($redis->cli('GET', 'explicit:1'), 'r', 'and leaves the Redis key');
$shm->query_safe(q{SELECT cache_set('explicit:2', 's', 0)});
$redis->cli('SET', 'explicit:2', 'r');
is($red->query_safe(q{SELECT cache_invalidate_prefix('explicit:')}), '2',
	'cache_invalidate_prefix in a Redis session removes the Redis keys');
is($shm->query_safe(q{SELECT cache_get('explicit:2')}), 's', 'and leaves the shmem key');

# ---- PREPARE TRANSACTION with pending trigger work is refused ----

for my $pair ([ 'shmem', $shm ], [ 'redis', $red ])
{
	my ($b, $s) = @$pair;
	CacheTest::run($s, q{BEGIN});
	CacheTest::run($s, qq{UPDATE users SET name = 'prepared-$b' WHERE user_id = 1});
	($out, $err) = CacheTest::run($s, qq{PREPARE TRANSACTION 'ce_$b'});
	like($err, qr/ERROR:.*cannot prepare a transaction that has pending cache_ext work/,
		"$b session: PREPARE TRANSACTION after a write to an attached table is refused");
	CacheTest::run($s, q{ROLLBACK});
	is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_prepared_xacts}), '0',
		"$b session: nothing was prepared");
	is($node->safe_psql('postgres', q{SELECT name FROM users WHERE user_id = 1}),
		'one again', "$b session: the row is unchanged");
}

$shm->quit;
$red->quit;

# ---- without cache_ext.redis_url, a shmem session's writes do not try Redis ----

my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
});
$plain->start;
$plain->safe_psql('postgres', q{CREATE EXTENSION cache_ext;
CREATE TABLE users (user_id int PRIMARY KEY, name text);
SELECT cache_attach('users', 'users:all', 'users:by_id:{user_id}');});
is($plain->safe_psql('postgres', q{SHOW cache_ext.redis_url}), '',
	'cache_ext.redis_url is empty by default');
my ($rc, $err2);
($rc, $out, $err2) = CacheTest::sql($plain, q{SELECT cache_set('users:by_id:1', 'x', 0);
	INSERT INTO users VALUES (1, 'a'); UPDATE users SET name = 'b';
	SELECT cache_get('users:by_id:1') IS NULL});
is($rc, 0, 'with no Redis configured, writes to an attached table work');
is($err2, '', 'without any message about Redis');
like($out, qr/t$/, 'and they invalidate the shmem key');
# an explicit invalidation on the Redis backend with no Redis configured
# has nothing stale to protect: it reports the failure and the
# transaction commits, with nothing to repeat or queue after it
($rc, $out, $err2) = CacheTest::sql($plain, q{SET cache_ext.backend = 'redis';
	BEGIN; SELECT cache_delete('k'); INSERT INTO users VALUES (2, 'c'); COMMIT;
	SELECT count(*) FROM users WHERE user_id = 2});
is($rc, 0, 'with no Redis configured, a Redis-backend cache_delete in a writing transaction commits');
like($out, qr/1$/, 'and the row is there');
like($err2, qr/cache_ext.redis_url is not set/, 'the failure names the missing setting');
unlike($err2, qr/nor queue/, 'and nothing tries to queue it');
$plain->stop;

$node->stop;
done_testing();
