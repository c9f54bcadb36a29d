# Changes applied by a logical-replication subscription invalidate like any
# write (issue 12, situation 5): on the subscriber, users is attached with a
# prefix and a key template; the publisher's INSERT, UPDATE, DELETE and
# TRUNCATE, replayed by the apply worker (which fires row triggers only, and
# only ENABLE REPLICA / ALWAYS ones), remove the subscriber's keys, in the
# shared-memory store and in Redis, and leave unrelated keys alone.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/100_redis_lib.pm";

my $redis = RedisServer->new;

my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->start;

my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
my $url = 'redis://127.0.0.1:' . $redis->port . '/0';
$sub->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
cache_ext.redis_url = '$url'
});
$sub->start;

my $ddl = 'CREATE TABLE users (user_id int PRIMARY KEY, name text)';
$pub->safe_psql('postgres', $ddl);
$pub->safe_psql('postgres', q{INSERT INTO users VALUES (1, 'Ada'), (2, 'Grace')});
$pub->safe_psql('postgres', 'CREATE PUBLICATION pub FOR TABLE users');

$sub->safe_psql('postgres', $ddl);
$sub->safe_psql('postgres', 'CREATE EXTENSION cache_ext');
$sub->safe_psql('postgres',
	q{SELECT cache_attach('users', 'users:all', 'users:by_id:{user_id}')});
my $connstr = $pub->connstr() . ' dbname=postgres';
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION sub CONNECTION '$connstr' PUBLICATION pub");
$pub->wait_for_catchup('sub');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM users'), '2',
	'the subscriber has the initial rows');

# the keys the subscriber's application caches, in both stores
sub fill
{
	$sub->safe_psql('postgres', q{
		SELECT cache_set('users:all', '[all]', 0);
		SELECT cache_set('users:by_id:1', 'Ada', 0);
		SELECT cache_set('users:by_id:2', 'Grace', 0);
		SELECT cache_set('other:1', 'unrelated', 0);
	});
	$redis->cli('SET', $_, 'cached') for qw(users:all users:by_id:1 users:by_id:2 other:1);
}

sub shm_has
{
	return $sub->safe_psql('postgres', "SELECT cache_get('$_[0]') IS NOT NULL") eq 't';
}
sub redis_has { return $redis->cli('EXISTS', $_[0]) eq '1'; }

sub replicate
{
	my ($sql, $what) = @_;
	fill();
	$pub->safe_psql('postgres', $sql);
	$pub->wait_for_catchup('sub');
	# the apply worker's commit has returned once the publisher sees it caught up
	ok(!shm_has('users:all') && !redis_has('users:all'),
		"$what: the prefix users:all is invalidated in both stores");
	return;
}

replicate(q{UPDATE users SET name = 'Ada L.' WHERE user_id = 1}, 'UPDATE');
ok(!shm_has('users:by_id:1') && !redis_has('users:by_id:1'),
	'UPDATE: the row\'s templated key is gone from both stores');
ok(shm_has('users:by_id:2') && redis_has('users:by_id:2'),
	'UPDATE: another row\'s key stays');
ok(shm_has('other:1') && redis_has('other:1'), 'UPDATE: unrelated keys stay');
is($sub->safe_psql('postgres', 'SELECT name FROM users WHERE user_id = 1'), 'Ada L.',
	'the subscriber has the new row');

replicate(q{INSERT INTO users VALUES (3, 'Barbara')}, 'INSERT');

replicate(q{DELETE FROM users WHERE user_id = 2}, 'DELETE');
ok(!shm_has('users:by_id:2') && !redis_has('users:by_id:2'),
	'DELETE: the deleted row\'s key is gone from both stores');
ok(shm_has('users:by_id:1') && redis_has('users:by_id:1'),
	'DELETE: another row\'s key stays');

replicate(q{TRUNCATE users}, 'TRUNCATE');
ok(!shm_has('users:by_id:1') && !redis_has('users:by_id:1'),
	'TRUNCATE: the template\'s keys are gone from both stores');
ok(shm_has('other:1') && redis_has('other:1'), 'TRUNCATE: unrelated keys stay');

$sub->stop;
$pub->stop;
done_testing();
