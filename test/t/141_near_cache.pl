# cache_ext.redis_near_cache: Redis values kept in this server's shared
# memory, kept coherent by the worker's tracking connection and by this
# server's own writes.  Another Redis client overwrites, deletes, expires and
# FLUSHes keys the near-cache holds; Redis restarts; the tracking connection
# is killed.  After each, no stale value is served once the invalidation
# message can have arrived (poll until fresh within a few seconds, then check
# that it stays fresh), and after a lost connection none at all.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

require "$FindBin::Bin/100_redis_lib.pm";

my $redis = RedisServer->new;
my $node = RedisServer::cache_node('near', $redis, undef,
	"cache_ext.redis_near_cache = 8MB\n");

# One statement in a new session; NULL reads as '<null>'.
sub sql { return $node->safe_psql('postgres', $_[0]); }

sub get
{
	my ($key) = @_;
	return sql("SELECT coalesce(cache_get('$key'), '<null>')");
}

# Redis' count of GET commands executed (MGET apart).
sub redis_gets
{
	my $stats = $redis->cli('INFO', 'commandstats') // '';
	return $stats =~ /^cmdstat_get:calls=(\d+)/m ? $1 : 0;
}

# Reads the key until it is $want (within $secs); then 10 more reads over a
# second must all give $want.  Any read giving $never fails the test.
sub fresh
{
	my ($key, $want, $what, %opt) = @_;
	my $deadline = time() + ($opt{secs} // 5);
	my ($got, $stale) = ('', 0);
	while (time() < $deadline)
	{
		$got = get($key);
		$stale++ if defined $opt{never} && $got eq $opt{never};
		last if $got eq $want;
		usleep(50_000);
	}
	is($got, $want, "$what: fresh within a few seconds");
	my @later;
	for (1 .. 10)
	{
		push @later, get($key);
		usleep(100_000);
	}
	is_deeply(\@later, [ ($want) x 10 ], "$what: stays fresh");
	is($stale, 0, "$what: never served the value from before")
	  if defined $opt{never};
}

# Is the key answered from the near-cache (no GET reaches Redis)?
sub near_hit
{
	my ($key) = @_;
	get($key);    # fills, if the tracking connection is live
	my $before = redis_gets();
	sql("SELECT cache_get('$key') FROM generate_series(1, 20)");
	return redis_gets() == $before;
}

# The worker's tracking connection: the RESP2 redirect target subscribed
# to __redis__:invalidate (a pubsub client), and any client with tracking on.
sub kill_tracking
{
	my $n = 0;
	for my $line (split /\n/, $redis->cli('CLIENT', 'LIST') // '')
	{
		next unless $line =~ /\bid=(\d+)\b.*\bflags=(\S+)/;
		my ($id, $flags) = ($1, $2);
		next unless $flags =~ /[Pt]/;
		$n += ($redis->cli('CLIENT', 'KILL', 'ID', $id) // 0);
	}
	return $n;
}

is(sql("SHOW cache_ext.redis_near_cache"), '8MB', 'the setting exists');

# ---- hits do not reach Redis once the tracking connection is live ----
sql("SELECT cache_set('warm', 'w', 0)");
my $deadline = time() + 10;
my $live = 0;
while (!$live && time() < $deadline)
{
	$live = near_hit('warm');
	usleep(100_000) unless $live;
}
ok($live, 'a repeated read is answered without a GET to Redis');

sql("SELECT cache_set('k1', 'v1', 0)");
get('k1');
my $hits = sql("SELECT hits FROM cache_stats()");
my $gets = redis_gets();
is(sql("SELECT string_agg(cache_get('k1'), ',') FROM generate_series(1, 20)"),
	join(',', ('v1') x 20), '20 reads give the value');
is(redis_gets(), $gets, '... none of them a GET to Redis');
is(sql("SELECT hits FROM cache_stats()"), $hits + 20,
	'... and cache_stats() counts them as hits');

# ---- this server's own writes take effect at once ----
is(sql("SELECT cache_set('k1', 'v2', 0)"), 't', 'own set');
is(get('k1'), 'v2', 'own set: read at once');
ok(near_hit('k1'), 'own set: then near again');
sql("SELECT cache_delete('k1')");
is(get('k1'), '<null>', 'own delete: a miss at once');
sql("SELECT cache_set('p:1', 'a', 0), cache_set('p:2', 'b', 0)");
get('p:1');
get('p:2');
sql("SELECT cache_invalidate_prefix('p:')");
is(get('p:1') . get('p:2'), '<null><null>', 'own prefix invalidation');
sql("SELECT cache_set('q:1', 'a', 0)");
get('q:1');
sql("SELECT cache_invalidate_pattern('q:*')");
is(get('q:1'), '<null>', 'own pattern invalidation');
sql("SELECT cache_set('pat:ab:1', 'a', 0), cache_set('pat:ac:1', 'c', 0)");
ok(near_hit('pat:ab:1') && near_hit('pat:ac:1'), 'pattern with a literal start: held');
sql("SELECT cache_invalidate_pattern('pat:ab?1')");
is(get('pat:ab:1'), '<null>', 'own pattern invalidation with a literal start');
ok(near_hit('pat:ac:1'), 'a key the pattern does not match stays held');

# a write under cache_attach invalidates the near-cache too
sql(q{CREATE TABLE users (user_id int PRIMARY KEY, name text);
      INSERT INTO users VALUES (7, 'ann');
      SELECT cache_attach('users', 'users:by_id:{user_id}');
      SELECT cache_set('users:by_id:7', 'ann', 0)});
ok(near_hit('users:by_id:7'), 'row key held');
sql("UPDATE users SET name = 'bob' WHERE user_id = 7");
is(get('users:by_id:7'), '<null>', 'a trigger\'s invalidation: a miss at once');

# a write while Redis does not answer: its invalidation is queued, and the
# near-cache does not answer for the key meanwhile, nor after delivery
sql(q{INSERT INTO users VALUES (8, 'carl');
      SELECT cache_set('users:by_id:8', 'carl', 0)});
ok(near_hit('users:by_id:8'), 'queued: held');
$redis->pause;
sql("UPDATE users SET name = 'dan' WHERE user_id = 8");
is(get('users:by_id:8'), '<null>', 'queued: a miss while Redis is paused');
$redis->resume;
fresh('users:by_id:8', '<null>', 'queued: after delivery');
is($redis->cli('EXISTS', 'users:by_id:8'), '0', 'queued: delivered');

# ---- another client's writes ----
sql("SELECT cache_set('k2', 'old', 0)");
ok(near_hit('k2'), 'overwrite: held');
$redis->cli('SET', 'k2', 'new');
fresh('k2', 'new', 'overwrite by another client');

ok(near_hit('k2'), 'delete: held');
$redis->cli('DEL', 'k2');
fresh('k2', '<null>', 'delete by another client');

# expiry set by another client: the EXPIRE itself is reported, and the
# value read again carries its TTL
sql("SELECT cache_set('k3', 'v3', 0)");
ok(near_hit('k3'), 'expire: held');
my $expire_at = time() + 6;
$redis->cli('PEXPIRE', 'k3', '6000');
fresh('k3', 'v3', 'expire: read again with its TTL');
usleep(1_000_000 * ($expire_at - time())) if $expire_at > time();
fresh('k3', '<null>', 'expired');

# a TTL of its own: never served past it, even with no message from Redis
sql("SELECT cache_set('k4', 'v4', 1)");
ok(near_hit('k4'), 'ttl: held');
usleep(1_300_000);
is(get('k4'), '<null>', 'ttl: gone once expired');

sql("SELECT cache_set('f$_', 'v', 0)") for 1 .. 5;
ok(near_hit("f$_"), "flush: f$_ held") for 1 .. 5;
$redis->cli('FLUSHALL');
fresh("f$_", '<null>', "FLUSHALL: f$_") for 1 .. 5;

# ---- Redis restarts: nothing from before is served afterwards ----
sql("SELECT cache_set('k5', 'old', 0)");
ok(near_hit('k5'), 'restart: held');
$redis->stop;
$redis->start;
$redis->cli('SET', 'k5', 'new');
fresh('k5', 'new', 'after a Redis restart', secs => 10, never => 'old');
$deadline = time() + 10;
$live = 0;
while (!$live && time() < $deadline)
{
	$live = near_hit('k5');
	usleep(100_000) unless $live;
}
ok($live, 'after a Redis restart: the near-cache works again');

# ---- the tracking connection is killed ----
sql("SELECT cache_set('k6', 'old', 0)");
ok(near_hit('k6'), 'killed connection: held');
ok(kill_tracking() > 0, 'killed the tracking connection');
# a write whose message the dead connection cannot carry
$redis->cli('SET', 'k6', 'new');
fresh('k6', 'new', 'after CLIENT KILL of the tracking connection');
$deadline = time() + 10;
$live = 0;
while (!$live && time() < $deadline)
{
	$live = near_hit('k6');
	usleep(100_000) unless $live;
}
ok($live, 'after CLIENT KILL: the near-cache works again');
$redis->cli('SET', 'k6', 'newer');
fresh('k6', 'newer', 'after reconnection: messages arrive again');

# ---- Redis stops answering without closing anything (a dead network path) ----
sql("SELECT cache_set('k8', 'v8', 0)");
ok(near_hit('k8'), 'silent Redis: held');
$redis->pause;
# the tracking connection stays open: only its unanswered PING tells
$deadline = time() + 15;
my $refused = 0;
while (!$refused && time() < $deadline)
{
	$refused = (get('k8') ne 'v8');
	usleep(200_000) unless $refused;
}
ok($refused, 'silent Redis: the near-cache stops serving what it held');
$redis->resume;
$deadline = time() + 10;
$live = 0;
while (!$live && time() < $deadline)
{
	$live = near_hit('k8');
	usleep(100_000) unless $live;
}
ok($live, 'silent Redis: once it answers again, the near-cache works again');

# ---- a session on another namespace bypasses it ----
sql("SELECT cache_set('k7', 'v7', 0)");
ok(near_hit('k7'), 'namespace: held');
$gets = redis_gets();
$node->safe_psql('postgres',
	"SET cache_ext.key_prefix = 'other:'; SELECT cache_get('k7')");
is(redis_gets(), $gets + 1, 'a session with another key_prefix reads Redis');

$node->stop;
done_testing();
