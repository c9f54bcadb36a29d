# "make installcheck" against a server in use (issue 16): a cluster that
# preloads cache_ext with the Redis store as its default, whose Redis holds
# an application's keys and whose statistics are not zero.  The PGXS target
# runs every regress case; afterwards the application's keys are all there
# with their values, every key the cases made is under their own prefix,
# and no counter went back (nothing was reset).  Then cache_reset_stats()
# itself, which the regress cases no longer call, and what the monitoring
# views show that needs more than one session: a cache_fetch() waiting for
# another's key lock, a refused stale set, invalidations Redis could not
# take.
use strict;
use warnings;

use File::Copy qw(copy);
use File::Path qw(make_path);
use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/100_redis_lib.pm";
require "$FindBin::Bin/120_lib.pm";

my $root = "$FindBin::Bin/../..";
my $redis = RedisServer->new;
my $node = RedisServer::cache_node('installcheck', $redis);

# ---- the application's keys: in Redis and in the shared-memory store ----

my %app;
for my $i (1 .. 20)
{
	$app{"app:session:$i"} = "session data $i";
	$redis->cli('SET', "app:session:$i", $app{"app:session:$i"});
}
$app{'app:token'} = 'expires later';
$redis->cli('SET', 'app:token', $app{'app:token'}, 'EX', '3600');
# what this server's own use of cache_ext stored in Redis and in shmem
$node->safe_psql('postgres', q{
	SELECT cache_set('users:by_id:1', 'from the application', 0);
	SET cache_ext.backend = shmem;
	SELECT cache_set('users:by_id:1', 'in shared memory', 0);
});
$app{'users:by_id:1'} = 'from the application';

# non-zero statistics on both stores
$node->safe_psql('postgres', q{
	SELECT cache_get('users:by_id:1'), cache_get('users:by_id:2');
	SET cache_ext.backend = shmem;
	SELECT cache_get('users:by_id:1'), cache_get('users:by_id:2');
});

my @counters = qw(hits misses sets deletes invalidations evictions expirations errors);
sub counters
{
	my ($store) = @_;
	my $row = $node->safe_psql('postgres',
		"SET cache_ext.backend = $store; SELECT "
		  . join(" || ',' || ", @counters) . ' FROM cache_stats()');
	my %c;
	@c{@counters} = split /,/, $row;
	return \%c;
}
my %before = map { $_ => counters($_) } qw(shmem redis);
my $stats_reset = $node->safe_psql('postgres',
	q{SELECT DISTINCT stats_reset FROM cache_ext_stats});
ok($before{$_}{hits} > 0 && $before{$_}{sets} > 0, "$_: statistics are not zero before")
  for qw(shmem redis);

# ---- make installcheck, from a copy of what PGXS needs ----

my $dir = PostgreSQL::Test::Utils::tempdir('installcheck');
copy("$root/$_", "$dir/$_") or die "copy $_: $!" for qw(Makefile cache_ext.control);
for my $sub (qw(sql expected))
{
	make_path("$dir/$sub");
	opendir(my $dh, "$root/$sub") or die "$root/$sub: $!";
	for my $f (grep { !/^\./ } readdir $dh)
	{
		copy("$root/$sub/$f", "$dir/$sub/$f") or die "copy $sub/$f: $!";
	}
	closedir $dh;
}

my ($out, $err) = ('', '');
{
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGOPTIONS} = '';
	IPC::Run::run(
		[ 'make', '-C', $dir, 'installcheck', 'PG_CONFIG=' . ($ENV{PG_CONFIG} // 'pg_config') ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(600));
}
my $passed = ($out =~ /All \d+ tests passed/);
ok($passed, 'make installcheck passes against the running server');
if (!$passed)
{
	diag("make installcheck:\n$out\n$err");
	diag(slurp_file("$dir/regression.diffs")) if -e "$dir/regression.diffs";
}

# ---- what it left ----

for my $k (sort keys %app)
{
	is($redis->cli('GET', $k), $app{$k}, "Redis key $k is still there, unchanged");
}
my $ttl = $redis->cli('TTL', 'app:token');
ok($ttl > 3000, "app:token keeps its TTL ($ttl)");
is($node->safe_psql('postgres',
		q{SET cache_ext.backend = shmem; SELECT cache_get('users:by_id:1')}),
	'in shared memory', "the shared-memory store still holds database postgres's key");

my @strays = grep { $_ ne '' && !exists $app{$_} && !/^cache_ext_installcheck:/ }
  split /\n/, $redis->cli('--scan');
is(join(' ', sort @strays), '', 'every key the cases made is under cache_ext_installcheck:');

my %after = map { $_ => counters($_) } qw(shmem redis);
for my $store (qw(shmem redis))
{
	my @back = grep { $after{$store}{$_} < $before{$store}{$_} } @counters;
	is(join(' ', @back), '', "$store: no counter went back (the statistics were not reset)");
}
is($node->safe_psql('postgres', q{SELECT DISTINCT stats_reset FROM cache_ext_stats}),
	$stats_reset, 'and cache_ext_stats.stats_reset is unchanged');

# ---- cache_reset_stats(): what the regress cases no longer call ----

$node->safe_psql('postgres', 'SELECT cache_reset_stats()');
for my $store (qw(shmem redis))
{
	my $c = counters($store);
	is(join(',', map { $c->{$_} } @counters), join(',', (0) x @counters),
		"$store: cache_reset_stats() sets every counter back to 0");
}
$node->safe_psql('postgres', q{SELECT cache_get('users:by_id:1')});
is(counters('redis')->{hits}, 1, 'and counting starts again from there');
is($node->safe_psql('postgres',
		qq{SELECT DISTINCT stats_reset > '$stats_reset' FROM cache_ext_stats}),
	't', 'stats_reset says when');

# ---- monitoring: what needs several sessions ----

sub view_delta
{
	my ($store, $mark, @cols) = @_;
	my $row = $node->safe_psql('postgres',
		"SELECT " . join(" || ',' || ", @cols) . " FROM cache_ext_stats WHERE store = '$store'");
	my @now = split /,/, $row;
	return join(',', map { $now[$_] - $mark->[$_] } 0 .. $#cols);
}
sub view_mark
{
	my ($store, @cols) = @_;
	return [ split /,/, $node->safe_psql('postgres',
		"SELECT " . join(" || ',' || ", @cols) . " FROM cache_ext_stats WHERE store = '$store'") ];
}

# a cache_fetch() waiting for the key lock another one holds, by key
my $a = CacheTest::session($node, backend => 'shmem');
my $b = CacheTest::session($node, backend => 'shmem');
my $apid = CacheTest::pid($a);
my $bpid = CacheTest::pid($b);
CacheTest::start($a, q{SELECT cache_fetch('mon:slow', 'SELECT 42 AS answer FROM pg_sleep(4)')});
ok(CacheTest::poll(10, sub {
	$node->safe_psql('postgres', "SELECT count(*) FROM cache_ext_fetch_locks WHERE pid = $apid") eq '1' }),
	'the first cache_fetch() holds its key lock');
CacheTest::start($b, q{SELECT cache_fetch('mon:slow', 'SELECT 42 AS answer FROM pg_sleep(4)')});
ok(CacheTest::poll(10, sub {
	$node->safe_psql('postgres', "SELECT count(*) FROM cache_ext_fetch_locks WHERE pid = $bpid") eq '1' }),
	'the second one waits for it');
is($node->safe_psql('postgres', qq{
	SELECT string_agg(format('%s %s %s %s', CASE pid WHEN $apid THEN 'first' ELSE 'second' END,
	                         store, key, CASE WHEN granted THEN 'holds' ELSE 'waits' END), '; '
	                  ORDER BY granted DESC)
	FROM cache_ext_fetch_locks}),
	'first shmem mon:slow holds; second shmem mon:slow waits',
	'cache_ext_fetch_locks names the key, who holds it and who waits');
my ($fin_a) = CacheTest::wait_done($a, 30);
my ($fin_b, $out_b) = CacheTest::wait_done($b, 30);
ok($fin_a && $fin_b, 'both calls end');
is($out_b, '[{"answer": 42}]', 'the waiter got the first one\'s result');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cache_ext_fetch_locks'), '0',
	'no key lock is left');

# a set refused as possibly stale: missed before another session's
# invalidation covering the key committed
my @refused = qw(sets_refused sets);
my $mark = view_mark('shmem', @refused);
CacheTest::val($a, q{SELECT cache_get('mon:stale:1')});
$node->safe_psql('postgres', q{SET cache_ext.backend = shmem; SELECT cache_invalidate_prefix('mon:stale:')});
is(CacheTest::val($a, q{SELECT cache_set('mon:stale:1', 'old rows')}), 'f', 'the stale set is refused');
is(view_delta('shmem', $mark, @refused), '1,0', 'cache_ext_stats counts it in sets_refused');

# invalidations Redis cannot take: failed, queued, then delivered
$node->safe_psql('postgres', q{
	CREATE TABLE mon_users (user_id int PRIMARY KEY, name text);
	SELECT cache_attach('mon_users', 'mon_users:');
});
my @queue = qw(invalidations_failed queue_pushed queue_delivered);
$mark = view_mark('redis', @queue);
$redis->stop;
$node->safe_psql('postgres', q{SET cache_ext.on_error = ignore; INSERT INTO mon_users VALUES (1, 'ann')});
is($node->safe_psql('postgres', q{SELECT queue_length > 0 FROM cache_ext_stats WHERE store = 'redis'}),
	't', 'with Redis down the invalidation waits in the queue');
is($node->safe_psql('postgres', q{
	SET cache_ext.on_error = error;
	SELECT count(*) FILTER (WHERE store = 'redis' AND entries IS NULL AND bytes_used IS NULL)
	FROM cache_ext_stats_database}), '1',
	'cache_ext_stats_database reads NULL for Redis and does not fail, even with on_error = error');
$redis->start;
ok(CacheTest::poll(30, sub {
	$node->safe_psql('postgres', q{SELECT queue_length FROM cache_ext_stats WHERE store = 'redis'}) eq '0' }),
	'once Redis is back the queue empties');
my @d = split /,/, view_delta('redis', $mark, @queue);
ok($d[0] >= 1 && $d[1] >= 1 && $d[2] >= 1,
	"invalidations_failed, queue_pushed and queue_delivered count it (@d)");

$a->quit;
$b->quit;
$node->stop;
done_testing();
