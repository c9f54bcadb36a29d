# The Redis store never hangs a session and recovers by itself: Redis
# stopped and restarted under a live session, a Redis that accepts
# connections but never answers (SIGSTOP), and query cancellation of a call
# stuck on Redis.  Times are only checked as generous upper bounds.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

require "$FindBin::Bin/100_redis_lib.pm";

my $redis = RedisServer->new;
my $node = RedisServer::cache_node('failures', $redis);

# ---- Redis stopped and restarted during one session ----

my $s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe(q{SET cache_ext.on_error = warn});
my $pid = $s->query_safe(q{SELECT pg_backend_pid()});
is($s->query_safe(q{SELECT cache_set('k', 'before', 0)}), 't', 'set before Redis stops');

$redis->stop;
my $start = time();
my ($out, $failed) = $s->query(q{SELECT cache_get('k') IS NULL});
is($out, 't', 'while Redis is down, a get is a miss');
like($s->{stderr}, qr/WARNING:  cache_ext: redis store failed to read a value/,
	'with a WARNING');
like($s->{stderr}, qr/Could not connect to Redis at 127\.0\.0\.1:\d+: Connection refused/,
	'that says why');
$s->{stderr} = '';
($out) = $s->query(q{SELECT cache_set('k', 'during', 0)});
is($out, 'f', 'while Redis is down, a set returns false');
ok(time() - $start < 5, 'calls while Redis is down do not hang');
$s->{stderr} = '';

$redis->start;
$start = time();
my $back = 0;
while (time() - $start < 15)
{
	($out) = $s->query(q{SELECT cache_set('k', 'after', 0)});
	if ($out eq 't')
	{
		$back = 1;
		last;
	}
	usleep(200_000);
}
ok($back, 'the same session stores again after Redis restarts');
ok(time() - $start < 5, 'within a few seconds of the restart');
is($s->query_safe(q{SELECT cache_get('k')}), 'after', 'and reads its value back');
is($s->query_safe(q{SELECT pg_backend_pid()}), $pid, 'it is the same session');
is($redis->cli('GET', 'k'), 'after', 'Redis has the value');
$s->quit;

# ---- a connection Redis closed while it was idle ----

$s = $node->background_psql('postgres', on_error_stop => 0);
is($s->query_safe(q{SELECT cache_get('k')}), 'after', 'a session connected to Redis');
$redis->cli('CONFIG', 'SET', 'timeout', '1');
sleep(3);    # Redis closes the idle connection
($out) = $s->query(q{SELECT cache_get('k')});
is($out, 'after', 'a connection closed by Redis\'s idle timeout is replaced at once');
is($s->{stderr}, '', 'without any warning');
$redis->cli('CONFIG', 'SET', 'timeout', '0');
$s->quit;

# ---- a Redis that accepts connections but never answers ----

$node->safe_psql('postgres', q{SELECT cache_set('k', 'v', 0)});
$redis->pause;

my ($rc, $err, $secs);
($rc, $out, $err, $secs) = RedisServer::sql($node,
	q{SET cache_ext.on_error = warn; SELECT cache_get('k') IS NULL});
is($out, 't', 'a stopped Redis: a get is a miss in warn mode');
like($err, qr/WARNING:  cache_ext: redis store failed to read a value\nDETAIL:  Timed out waiting for a reply from Redis/,
	'with a WARNING about the timeout');
ok($secs < 5, "the call returned after about the command timeout (${secs}s)");

($rc, $out, $err, $secs) = RedisServer::sql($node,
	q{SET cache_ext.on_error = error; SELECT cache_get('k')});
isnt($rc, 0, 'a stopped Redis: a get fails in error mode');
like($err, qr/ERROR:  cache_ext: redis store failed to read a value/, 'with an ERROR');
ok($secs < 5, "the call returned after about the command timeout (${secs}s)");

($rc, $out, $err, $secs) = RedisServer::sql($node,
	q{SET cache_ext.on_error = ignore; SELECT cache_set('k2', 'v') || ' ' || coalesce(cache_get('k'), 'miss')});
is($out, 'false miss', 'ignore mode: not stored and a miss');
is($err, '', 'without any message');
ok($secs < 5, "both calls returned (${secs}s)");

# ---- cancellation of a call stuck on Redis ----

# statement_timeout shorter than the command timeout
($rc, $out, $err, $secs) = RedisServer::sql($node,
	q{SET cache_ext.redis_command_timeout = 60000; SET statement_timeout = 300;
	  SELECT cache_get('k')});
like($err, qr/canceling statement due to statement timeout/,
	'statement_timeout interrupts a call waiting on Redis');
ok($secs < 5, "promptly (${secs}s)");

# pg_cancel_backend, then the same session once Redis answers again
$s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe(q{SET cache_ext.redis_command_timeout = 60000});
$pid = $s->query_safe(q{SELECT pg_backend_pid()});
$s->{stdin} .= "SELECT cache_get('k');\n";
$s->{run}->pump_nb;
ok( $node->poll_query_until('postgres',
		"SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $pid"),
	'the session waits on Redis');
$start = time();
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
($out) = $s->query(q{SELECT 'alive'});
like($s->{stderr}, qr/canceling statement due to user request/,
	'pg_cancel_backend interrupts the call');
ok(time() - $start < 5, 'promptly');
is($out, 'alive', 'the session is still usable');
$s->{stderr} = '';

$redis->resume;
$s->query_safe(q{SELECT pg_sleep(1.2)});    # past the retry back-off
is($s->query_safe(q{SELECT cache_set('k3', 'three', 0)}), 't',
	'after Redis answers again the session stores');
is($s->query_safe(q{SELECT cache_get('k') || ' ' || cache_get('k3')}), 'v three',
	'and each read gets its own reply, not one left over from the cancelled call');
$s->quit;

$node->stop;
done_testing();
