# No invalidation is ever lost (issue 12): when Redis cannot take a
# trigger's invalidation (stopped, not answering, refusing writes, or the
# session is in its retry pause after an earlier timeout), the write still
# commits and the invalidation is queued in shared memory; until it is
# delivered, reads of the keys it covers miss on this server and sets of
# them are refused; it is delivered by itself once Redis answers, and
# cache_stats().invalidations_queued shows it waiting.  With on_error =
# 'error' the writing statement fails instead.  Writes are never blocked by
# a Redis that is down.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

require "$FindBin::Bin/120_lib.pm";

my $redis = RedisServer->new;
my $node = CacheTest::users_node('hiccup', $redis, rows => 10);
my ($out, $err, $rc, $secs);

sub name_of
{
	return $node->safe_psql('postgres', "SELECT name FROM users WHERE user_id = $_[0]");
}

# Pauses Redis's writes only: reads (GET, SCAN, INFO) still work, so a stale
# value left in Redis would be served if cache_ext did not know better.
sub pause_writes { $redis->cli('CLIENT', 'PAUSE', '60000', 'WRITE'); }
sub unpause { $redis->cli('CLIENT', 'UNPAUSE'); }

sub wait_delivered
{
	my ($key, $what) = @_;
	ok(CacheTest::poll(10, sub { $redis->cli('EXISTS', $key) eq '0' }),
		"$what: once Redis takes writes again, $key is removed from Redis by itself");
	ok(CacheTest::poll(10, sub { (CacheTest::queued($node) // -1) == 0 }),
		"$what: and invalidations_queued returns to 0");
}

# ---- a session whose earlier call timed out updates users ----

for my $case ([ 'warn', 2 ], [ 'ignore', 3 ])
{
	my ($mode, $id) = @$case;
	my $key = "users:by_id:$id";
	$redis->cli('SET', $key, "user$id (cached before the UPDATE)");
	$redis->cli('SET', 'users:all', '[all users]');

	my $s = CacheTest::session($node, backend => 'redis',
		set => ["SET cache_ext.on_error = $mode"]);
	is(CacheTest::val($s, q{SELECT cache_get('users:by_id:1') IS NULL}), 't',
		"$mode: a first get connects to Redis (a miss)");

	# its next call times out: the session is now in its retry pause
	$redis->pause;
	($out, $err) = CacheTest::run($s, q{SELECT cache_get('users:by_id:9') IS NULL});
	is($out, 't', "$mode: with Redis not answering, a get times out as a miss");
	$redis->resume;
	pause_writes();

	($out, $err) = CacheTest::run($s,
		qq{UPDATE users SET name = 'new$id' WHERE user_id = $id RETURNING name});
	is($out, "new$id", "$mode: the UPDATE succeeds");
	unlike($err, qr/ERROR/, "$mode: without an error");
	is($err, '', "$mode: and without any message in ignore mode") if $mode eq 'ignore';
	is(name_of($id), "new$id", "$mode: it committed");

	is($redis->cli('GET', $key), "user$id (cached before the UPDATE)",
		"$mode: (Redis still holds the old value: its writes are paused)");
	my $q = CacheTest::queued($node);
	ok(defined $q && $q > 0,
		"$mode: cache_stats() shows the invalidation queued (" . ($q // 'n/a') . ')');

	my $r = CacheTest::session($node, backend => 'redis',
		set => ["SET cache_ext.on_error = $mode"]);
	is(CacheTest::val($r, qq{SELECT cache_get('$key') IS NULL}), 't',
		"$mode: while it is queued, another session's get of $key misses");
	CacheTest::val($s, q{SELECT pg_sleep(1.2)});    # past its retry pause
	is(CacheTest::val($s, qq{SELECT cache_get('$key') IS NULL}), 't',
		"$mode: and so does the writer's");
	is(CacheTest::val($r, q{SELECT cache_get('users:all') IS NULL}), 't',
		"$mode: and a get of the prefix target users:all");
	is(CacheTest::val($r, qq{SELECT cache_set('$key', 'x')}), 'f',
		"$mode: a set of $key returns false");

	unpause();
	wait_delivered($key, $mode);
	ok(CacheTest::poll(10, sub { $redis->cli('EXISTS', 'users:all') eq '0' }),
		"$mode: users:all is removed too");

	CacheTest::val($r, q{SELECT pg_sleep(1.2)});    # past any retry pause
	is(CacheTest::val($r, qq{SELECT cache_get('$key') IS NULL}), 't', "$mode: then a miss");
	is(CacheTest::val($r, qq{SELECT cache_set('$key', 'new$id')}), 't',
		"$mode: and a set stores again");
	is($redis->cli('GET', $key), "new$id", "$mode: Redis holds the new value");
	$s->quit;
	$r->quit;
}

# ---- on_error = 'error': the UPDATE fails, the row is unchanged ----

{
	my $s = CacheTest::session($node, backend => 'redis',
		set => ['SET cache_ext.on_error = error']);
	CacheTest::val($s, q{SELECT cache_get('users:by_id:1')});
	$redis->pause;
	($out, $err) = CacheTest::run($s, q{UPDATE users SET name = 'never' WHERE user_id = 4});
	like($err, qr/ERROR:  cache_ext: redis store failed/,
		'error mode: an UPDATE while Redis does not answer fails');
	is(name_of(4), 'user4', 'error mode: the row is unchanged');
	($out, $err) = CacheTest::run($s, q{UPDATE users SET name = 'never' WHERE user_id = 4});
	like($err, qr/ERROR:  cache_ext: redis store failed/,
		'error mode: and so does the next one, in the retry pause');
	is(name_of(4), 'user4', 'error mode: the row is still unchanged');
	$redis->resume;
	$s->quit;
}

# ---- writes are not blocked by a Redis that is down ----

for my $how ('stopped (SIGSTOP)', 'killed')
{
	for my $backend ('shmem', 'redis')
	{
		my $id = $backend eq 'shmem' ? 5 : 6;
		my $val = "$backend " . ($how =~ /kill/ ? 'k' : 's');
		$redis->cli('SET', "users:by_id:$id", 'old');
		my $s = CacheTest::session($node, backend => $backend);
		$how =~ /kill/ ? $redis->stop : $redis->pause;
		CacheTest::start($s, qq{UPDATE users SET name = '$val' WHERE user_id = $id});
		my ($fin, $o, $e, $t) = CacheTest::wait_done($s, 30);
		ok($fin && $t < 3,
			sprintf('Redis %s: a %s session\'s UPDATE returns promptly (%.1fs)',
				$how, $backend, $t));
		unlike($e // '', qr/ERROR/, "Redis $how: $backend session: without an error");
		is(name_of($id), $val, "Redis $how: $backend session: the UPDATE committed");
		my $q = CacheTest::queued($node);
		ok(defined $q && $q > 0,
			"Redis $how: $backend session: the invalidation is queued (" . ($q // 'n/a') . ')');
		$how =~ /kill/ ? $redis->start : $redis->resume;
		ok(CacheTest::poll(10, sub { (CacheTest::queued($node) // -1) == 0 }),
			"Redis $how: $backend session: once Redis is back the queue empties by itself");
		# (a killed Redis lost its keys anyway)
		is($redis->cli('EXISTS', "users:by_id:$id"), '0',
			"Redis $how: $backend session: and users:by_id:$id was removed from Redis")
		  unless $how =~ /kill/;
		$s->quit;
	}
}

# ---- an immediate shutdown of PostgreSQL loses no queued invalidation ----

$redis->cli('SET', 'users:by_id:7', 'old7');
pause_writes();
($rc, $out, $err) = CacheTest::sql($node,
	q{UPDATE users SET name = 'seven' WHERE user_id = 7});
is($rc, 0, 'crash: an UPDATE while Redis refuses writes commits');
my $q = CacheTest::queued($node);
ok(defined $q && $q > 0, 'crash: its invalidation is queued (' . ($q // 'n/a') . ')');
$node->stop('immediate');
$node->start;
is($redis->cli('GET', 'users:by_id:7'), 'old7',
	'crash: (Redis still holds the old value: its writes are paused)');
($rc, $out, $err) = CacheTest::sql($node,
	q{SET cache_ext.on_error = ignore; SELECT cache_get('users:by_id:7') IS NULL});
is($out, 't', 'crash: after the restart, a get of the key misses until it is delivered');
unpause();
wait_delivered('users:by_id:7', 'crash');

$node->stop;
done_testing();
