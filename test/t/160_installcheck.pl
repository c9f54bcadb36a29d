# "make installcheck" against a server in use (issue 16): a cluster that
# preloads cache_ext with the Redis store as its default, whose Redis holds
# an application's keys and whose statistics are not zero.  The PGXS target
# runs every regress case; afterwards the application's keys are all there
# with their values, every key the cases made is under their own prefix,
# and no counter went back (nothing was reset).  Then cache_reset_stats()
# itself, which the regress cases no longer call.
use strict;
use warnings;

use File::Copy qw(copy);
use File::Path qw(make_path);
use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/100_redis_lib.pm";

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

$node->stop;
done_testing();
