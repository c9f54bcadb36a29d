# The invalidation queue survives a crash (issue 12: "No invalidation is
# ever lost"): a trigger's invalidation that Redis could not take while it
# was stopped is queued, in shared memory and in the file cache_ext_queue
# of the data directory; after an immediate shutdown (as after a crash) and
# a restart it is loaded again, keeps reads of the keys it covers missing
# even though Redis still holds their stale values, and is delivered by the
# worker once Redis takes writes; the file is emptied then.  The Redis
# password, which the queue must keep, never reaches the server log.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

require "$FindBin::Bin/100_redis_lib.pm";

my $password = 'queue-secret-7f3a';
my $redis = RedisServer->new('--requirepass', $password);
my $url = "redis://:$password\@127.0.0.1:" . $redis->port . '/0';
my $node = RedisServer::cache_node('queue_crash', $redis, $url);
my $queue_file = $node->data_dir . '/cache_ext_queue';
my $header_size = 8;    # magic and version: an empty queue

$node->safe_psql('postgres', q{
CREATE TABLE users (user_id int PRIMARY KEY, name text);
INSERT INTO users SELECT g, 'user' || g FROM generate_series(1, 3) g;
SELECT cache_attach('users', 'users:by_id:{user_id}');
});

sub poll
{
	my ($secs, $sub) = @_;
	my $deadline = time() + $secs;
	until ($sub->())
	{
		return 0 if time() > $deadline;
		usleep(100_000);
	}
	return 1;
}

# cache_stats().invalidations_queued, or undef while that column is absent.
sub queued
{
	my $json = $node->safe_psql('postgres',
		'SELECT to_jsonb(s) FROM cache_stats() s');
	return $json =~ /"invalidations_queued": (\d+)/ ? $1 : undef;
}

sub file_size { return -s $queue_file // 0; }

# Redis stopped (its keys saved first, so that it comes back with them),
# then a write under cache_attach: it must commit and queue its key.
sub write_while_redis_stopped
{
	my ($id) = @_;
	$redis->cli('SAVE');
	$redis->stop;
	my $before = file_size();
	my ($rc, $out, $err) = RedisServer::sql($node,
		"UPDATE users SET name = 'renamed' WHERE user_id = $id");
	is($rc, 0, "key $id: the write commits while Redis is stopped");
	ok(file_size() > $before,
		"key $id: its invalidation is in the queue file before the commit returns");
	my $n = queued();
	SKIP:
	{
		skip 'cache_stats() has no invalidations_queued column yet', 1
		  unless defined $n;
		ok($n >= 1, "key $id: cache_stats() shows it waiting ($n)");
	}
}

sub wait_drained
{
	my ($what) = @_;
	ok(poll(30, sub { file_size() <= $header_size }),
		"$what: the queue file is emptied once it is delivered");
	my $n = queued();
	SKIP:
	{
		skip 'cache_stats() has no invalidations_queued column yet', 1
		  unless defined $n;
		is($n, 0, "$what: and cache_stats() shows nothing waiting");
	}
}

ok(poll(10, sub { -e $queue_file && file_size() <= $header_size }),
	'the queue file exists and is empty at start');

# ---- crash, then Redis back: delivered at once ----

$redis->cli('SET', 'users:by_id:1', 'user1 (stale)');
write_while_redis_stopped(1);

$node->stop('immediate');
$redis->start;
is($redis->cli('GET', 'users:by_id:1'), 'user1 (stale)',
	'Redis comes back with the stale value');
$node->start;
ok(poll(30, sub { $redis->cli('EXISTS', 'users:by_id:1') eq '0' }),
	'after the restart the worker removes the stale key from Redis');
wait_drained('after the restart');

# ---- crash, Redis back but refusing writes: covered keys miss ----

$redis->cli('SET', 'users:by_id:2', 'user2 (stale)');
$redis->cli('SET', 'users:by_id:3', 'user3 (fresh)');
write_while_redis_stopped(2);

$node->stop('immediate');
$redis->start;
$redis->cli('CLIENT', 'PAUSE', '60000', 'WRITE');
$node->start;
my @loads = (slurp_file($node->logfile) =~
	  /cache_ext: \d+ Redis invalidations? queued before the restart (?:is|are) waiting for delivery/g);
is(scalar @loads, 2, 'each restart loaded what was queued (the log says so)');
my ($rc, $out, $err) = RedisServer::sql($node,
	q{SELECT coalesce(cache_get('users:by_id:2'), 'miss')});
is($out, 'miss',
	'while it waits, a read of the key it covers misses on this server');
is($redis->cli('GET', 'users:by_id:2'), 'user2 (stale)',
	'although Redis still holds the stale value');
($rc, $out, $err) = RedisServer::sql($node,
	q{SELECT cache_get('users:by_id:3')});
is($out, 'user3 (fresh)', 'a key it does not cover is read from Redis');
# Redis would hold a write for 5 s (paused) before failing it: the set must
# be refused before it goes there.
my $secs;
($rc, $out, $err, $secs) = RedisServer::sql($node,
	q{SET cache_ext.redis_command_timeout = 5000;
	  SELECT cache_set('users:by_id:2', 'computed meanwhile', 0)});
is($out, 'f', 'and a set of the covered key is refused');
ok($secs < 4, "at once, without trying Redis (${secs}s)");
ok(file_size() > $header_size, 'the queue file still holds it');

$redis->cli('CLIENT', 'UNPAUSE');
ok(poll(30, sub { $redis->cli('EXISTS', 'users:by_id:2') eq '0' }),
	'once Redis takes writes again, the worker removes the stale key');
wait_drained('after the pause');
is($redis->cli('GET', 'users:by_id:3'), 'user3 (fresh)',
	'and leaves the other key alone');
($rc, $out, $err) = RedisServer::sql($node,
	q{SELECT cache_set('users:by_id:2', 'user2 (renamed)', 0)});
is($out, 't', 'the key can be set again');

# ---- the log ----

my $log = slurp_file($node->logfile);
like($log, qr/cache_ext worker: delivered \d+ queued invalidations?; the queue is empty/,
	'the worker logs when the queue drains');
unlike($log, qr/\Q$password\E/, 'the Redis password never reaches the log');

$node->stop;
done_testing();
