# Commit-time work is bounded (issue 12): a transaction's commit-time repeat
# of its invalidations against a Redis that does not answer must not hold
# the transaction's locks (other sessions can read the table it truncated),
# pg_cancel_backend() ends such a COMMIT promptly (the transaction is
# committed, its invalidation queued and delivered later), and a Redis
# whose SCAN cursor never returns to 0, or is not a number, gives an error
# or a warning, never a hang.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

require "$FindBin::Bin/120_lib.pm";

my $redis = RedisServer->new;
my $node = CacheTest::users_node('locks', $redis);
my ($out, $err, $rc, $secs, $fin);

# ---- a COMMIT waiting on Redis holds no lock; a cancel ends it ----

# the command timeout is far longer than the test waits: a COMMIT that
# waits on Redis waits until Redis answers
my $c = CacheTest::session($node, backend => 'redis',
	set => ['SET cache_ext.redis_command_timeout = 60000']);
my $cpid = CacheTest::pid($c);
$c->query_safe(q{BEGIN});
$c->query_safe(q{TRUNCATE users});
$c->query_safe(q{INSERT INTO users VALUES (1, 'after truncate'), (2, 'b')});
# a reader that still saw the old rows cached one meanwhile: the commit-time
# repeat must remove it
$redis->cli('SET', 'users:by_id:1', 'user1 (old row)');

$redis->pause;
CacheTest::start($c, 'COMMIT');
# the COMMIT either returns or waits on Redis
ok( CacheTest::poll(
		20,
		sub {
			CacheTest::done($c) || $node->safe_psql('postgres',
				"SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $cpid"
			) eq 't';
		}),
	'the COMMIT is running (or done) with Redis not answering');

my $reader = CacheTest::session($node);
($out, $err) = CacheTest::run($reader,
	q{SET lock_timeout = '10s'; SELECT count(*) FROM users});
is($err, '', 'another session reads the truncated table while the COMMIT waits on Redis');
is($out, '2', 'and sees the committed rows');
$reader->quit;

my $waited = !CacheTest::done($c);
if ($waited)
{
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($cpid)");
}
($fin, $out, $err, $secs) = CacheTest::wait_done($c, 10);
ok($fin,
	$waited
	? 'pg_cancel_backend() ends a COMMIT that waits on Redis'
	: 'the COMMIT did not wait on Redis');
if (!$fin)
{
	# let it finish, to go on
	$redis->resume;
	($fin, $out, $err) = CacheTest::wait_done($c, 70);
	$redis->pause;
}
unlike($err // '', qr/ERROR/, 'the COMMIT reports no error: it committed');
is($node->safe_psql('postgres', q{SELECT string_agg(name, ',' ORDER BY user_id) FROM users}),
	'after truncate,b', 'the transaction is committed');
is(CacheTest::val($c, q{SELECT 'usable'}), 'usable', 'the session is usable');
my $q = CacheTest::queued($node);
ok(defined $q && $q > 0,
	'the undelivered invalidation is queued (' . ($q // 'n/a') . ')');
$redis->resume;
ok(CacheTest::poll(10, sub { $redis->cli('EXISTS', 'users:by_id:1') eq '0' }),
	'once Redis answers, the value cached from the old rows is removed');
ok(CacheTest::poll(10, sub { (CacheTest::queued($node) // -1) == 0 }),
	'and the queue is empty');
$c->quit;

# ---- the same with a row lock: an UPDATE's COMMIT ----

# (another writer gets past a row lock once the commit is visible, before
# the locks are released: this guards against work done before that)

$c = CacheTest::session($node, backend => 'redis',
	set => ['SET cache_ext.redis_command_timeout = 60000']);
$cpid = CacheTest::pid($c);
$c->query_safe(q{BEGIN});
$c->query_safe(q{UPDATE users SET name = 'locked' WHERE user_id = 2});
$redis->pause;
CacheTest::start($c, 'COMMIT');
CacheTest::poll(20,
	sub {
		CacheTest::done($c) || $node->safe_psql('postgres',
			"SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $cpid")
		  eq 't';
	});
($rc, $out, $err) = CacheTest::sql($node,
	q{SET lock_timeout = '10s'; UPDATE users SET name = 'next' WHERE user_id = 2 RETURNING name});
is($out, 'next', 'another session updates the row while the COMMIT waits on Redis');
$waited = !CacheTest::done($c);
$node->safe_psql('postgres', "SELECT pg_cancel_backend($cpid)") if $waited;
($fin) = CacheTest::wait_done($c, 10);
ok($fin, 'the COMMIT ends (cancelled or by itself)');
if (!$fin)
{
	$redis->resume;
	CacheTest::wait_done($c, 70);
}
$redis->resume;
ok(CacheTest::poll(10, sub { (CacheTest::queued($node) // -1) == 0 }),
	'and its invalidation is delivered once Redis answers');
$c->quit;

# ---- a SCAN cursor that never returns to 0, or is not a number ----

# (statement_timeout is only a safety net: reaching it is a failure.)  Each
# case on a fresh cluster: an invalidation that failed stays queued for that
# server, and later ones then go behind it without trying it.
$node->stop;
my @cases = (
	[ 'cursor1', q{cache_invalidate_prefix('users:')}, 'warn' ],
	[ 'cursor1', q{cache_invalidate_prefix('users:')}, 'error' ],
	[ 'cursor1', q{cache_invalidate_pattern('users:*')}, 'warn' ],
	[ 'cursor1', q{cache_flush()}, 'warn' ],
	[ 'abc', q{cache_invalidate_prefix('users:')}, 'warn' ],
	[ 'abc', q{cache_invalidate_prefix('users:')}, 'error' ]);
my %fakes;
my $i = 0;
for my $case (@cases)
{
	my ($mode, $call, $on_error) = @$case;
	my $fake = $fakes{$mode} //= CacheTest::fake_redis($mode);
	my $url = 'redis://127.0.0.1:' . $fake->{port} . '/0';
	my $n = RedisServer::cache_node('scan' . $i++, $redis, $url);
	($rc, $out, $err, $secs) = CacheTest::sql($n, qq{
SET cache_ext.backend = redis;
SET cache_ext.on_error = $on_error;
SET statement_timeout = '10s';
SELECT $call;});
	my $what = 'SCAN cursor ' . ($mode eq 'abc' ? '"abc"' : '"1" forever')
	  . ", $call, on_error = $on_error";
	unlike($err, qr/statement timeout/, "$what: no hang (statement_timeout not reached)");
	like($err,
		$on_error eq 'error' ? qr/ERROR:  cache_ext: / : qr/WARNING:  cache_ext: /,
		"$what: " . ($on_error eq 'error' ? 'an ERROR' : 'a WARNING'));
	note sprintf('%.1fs: stdout [%s] stderr [%s]', $secs, $out, $err);
	$n->stop('immediate');
}

done_testing();
