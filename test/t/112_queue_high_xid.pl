# A Redis invalidation queued just before a commit is delivered only once
# its transaction has ended, whatever the XID: with the XID counter past
# 2^31 the worker used to take every transaction as finished (it compared
# with a RecentXmin it never set) and delivered before the commit, so a
# reader could cache the old row again in between.
#
# The transaction is held between its queueing and its end by synchronous
# replication to a standby that does not exist: the commit record is
# written, the backend waits, and the XID is still running.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/120_lib.pm";

my $redis = RedisServer->new;
my $url = 'redis://127.0.0.1:' . $redis->port . '/0';
my $node = PostgreSQL::Test::Cluster->new('highxid');
$node->init(allows_streaming => 1);    # max_wal_senders > 0: synchronous commit applies
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
cache_ext.backend = redis
cache_ext.redis_url = '$url'
cache_ext.redis_command_timeout = 500
cache_ext.redis_connect_timeout = 1000
synchronous_standby_names = 'nobody'
synchronous_commit = off
});

# Next XID just past 2^31, in two hops so that every database stays within
# the wraparound limits: to 1.5 billion, where everything is frozen, then
# to 2^31 + 100.  Each hop provides the commit-log segment its XID needs,
# as pg_resetwal's documentation says to.
sub move_xid_counter
{
	my ($xid) = @_;
	command_ok([ 'pg_resetwal', '-x', $xid, $node->data_dir ],
		"pg_resetwal moves the XID counter to $xid");
	my $segment =
	  sprintf('%s/pg_xact/%04X', $node->data_dir, int($xid / 1048576));
	open(my $fh, '>', $segment) or die "could not create $segment: $!";
	print $fh "\0" x 262144;
	close $fh;
}
move_xid_counter(1_500_000_000);
$node->start;
$node->safe_psql('template1',
	'ALTER DATABASE template0 ALLOW_CONNECTIONS true');
$node->command_ok([ 'vacuumdb', '--all', '--freeze', '--quiet' ],
	'every database frozen');
$node->stop;
move_xid_counter(2**31 + 100);
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION cache_ext;
CREATE TABLE users (user_id int PRIMARY KEY, name text);
INSERT INTO users VALUES (1, 'old');
SELECT cache_attach('users', 'users:all', 'users:by_id:{user_id}');
});
ok($node->safe_psql('postgres', 'SELECT txid_current()') > 2**31,
	'transactions get XIDs past 2^31');

# The write's invalidation cannot reach a stopped Redis: it is queued at
# PRE_COMMIT, then the COMMIT waits for the missing synchronous standby.
my $w = CacheTest::session($node, set => ['SET synchronous_commit = on']);
my $wpid = CacheTest::pid($w);
$redis->pause;
$w->query_safe(q{BEGIN});
CacheTest::run($w, q{UPDATE users SET name = 'new' WHERE user_id = 1});
CacheTest::start($w, 'COMMIT');
ok( CacheTest::poll(
		20,
		sub {
			$node->safe_psql('postgres',
				"SELECT wait_event FROM pg_stat_activity WHERE pid = $wpid") eq
			  'SyncRep';
		}),
	'the COMMIT waits for synchronous replication');
$redis->resume;

# Redis answers again; the transaction is still running.  A reader caches
# the old row meanwhile (it still sees it): the queued invalidation must
# not have been spent already.
sleep 2;
my $q = CacheTest::queued($node) // 0;
ok($q > 0,
	"the invalidations stay queued while their transaction is running ($q)");
$redis->cli('SET', 'users:by_id:1', 'old (cached by a reader)');

# The transaction ends: the invalidation is delivered after it.
$node->safe_psql('postgres', "SELECT pg_cancel_backend($wpid)");
my ($fin, $out, $err) = CacheTest::wait_done($w, 20);
ok($fin, 'the COMMIT ends once its wait is cancelled');
like($err // '', qr/canceling wait for synchronous replication/,
	'it committed locally');
ok(CacheTest::poll(20, sub { (CacheTest::queued($node) // -1) == 0 }),
	'the queue is delivered once the transaction has ended');
is($redis->cli('EXISTS', 'users:by_id:1'), '0',
	'the old row cached meanwhile is gone');
is($node->safe_psql('postgres', 'SELECT name FROM users WHERE user_id = 1'),
	'new', 'the write is committed');

$w->quit;
$node->stop;
$redis->stop;
done_testing();
