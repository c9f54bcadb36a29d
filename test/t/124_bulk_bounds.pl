# Bulk work is bounded (issue 12):
# - 10,000 single-row INSERTs in one transaction under a prefix target do not
#   walk Redis 10,000 times: repeated identical prefix invalidations are
#   merged (Redis's own command counters tell how many SCANs ran);
# - a transaction with more template keys than it can remember (an UPDATE
#   of 150,000 rows under 'users:by_id:{user_id}') may widen its
#   commit-time repeat to the template's namespace, never further: keys
#   of the application and of other namespaces survive, in Redis and in
#   shared memory, and a value cached meanwhile under the namespace does not.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/120_lib.pm";

my $redis = RedisServer->new;
my $node = CacheTest::users_node('bulk', $redis, rows => 0);
my ($out, $err, $fin, $secs);

# calls of the commands that walk keys (SCAN, or a script doing it)
sub walk_calls
{
	my $stats = $redis->cli('INFO', 'commandstats');
	my $n = 0;
	while ($stats =~ /^cmdstat_(scan|keys|eval|evalsha|eval_ro|evalsha_ro|fcall|fcall_ro):calls=(\d+),/mg)
	{
		$n += $2;
	}
	return $n;
}

# ---- 10,000 single-row INSERTs in one transaction ----

$redis->cli('EVAL', q{for i = 1, 200 do redis.call('SET', 'other:' .. i, 'v') end return 1}, '0');
for my $backend ('redis', 'shmem')
{
	my $base = $backend eq 'redis' ? 100_000 : 200_000;
	$redis->cli('SET', 'users:all', '[all users]');
	$redis->cli('CONFIG', 'RESETSTAT');
	my $s = CacheTest::session($node, backend => $backend,
		set => ["SET statement_timeout = '300s'"]);
	CacheTest::start($s, qq{DO \$\$ BEGIN
  FOR i IN $base + 1 .. $base + 10000 LOOP
    INSERT INTO users VALUES (i, 'u' || i);
  END LOOP;
END \$\$});
	($fin, $out, $err, $secs) = CacheTest::wait_done($s, 310);
	ok($fin && $err !~ /ERROR/,
		sprintf('%s session: 10,000 single-row INSERTs in one transaction complete (%.1fs)',
			$backend, $secs));
	note $err if $err;
	my $walks = walk_calls();
	ok($walks <= 10,
		"$backend session: they walked Redis's keys a handful of times, not once per INSERT ($walks SCAN or script calls)");
	note $redis->cli('INFO', 'commandstats');
	is($redis->cli('EXISTS', 'users:all'), '0', "$backend session: users:all was invalidated");
	is($node->safe_psql('postgres', "SELECT count(*) FROM users WHERE user_id > $base"),
		'10000', "$backend session: the rows are there");
	$s->quit;
}

# ---- a transaction with 150,000 template keys ----

$node->safe_psql('postgres', q{
SELECT cache_detach('users');
TRUNCATE users;
INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 150000) g;
SELECT cache_attach('users', 'users:all', 'users:by_id:{user_id}');
});

for my $backend ('redis', 'shmem')
{
	my %keep = ('app:session:1' => 'sess', 'other:1' => 'o', 'users:other:1' => 'uo');
	my @gone = ('users:by_id:1', 'users:by_id:150000', 'users:all');
	$redis->cli('SET', $_, $keep{$_}) for keys %keep;
	$redis->cli('SET', $_, 'old') for @gone;
	my $shm = CacheTest::session($node, backend => 'shmem');
	$shm->query_safe(qq{SELECT cache_set('$_', '$keep{$_}', 0)}) for keys %keep;
	$shm->query_safe(qq{SELECT cache_set('$_', 'old', 0)}) for @gone;

	my $s = CacheTest::session($node, backend => $backend, timeout => 600,
		set => ["SET statement_timeout = '500s'"]);
	$s->query_safe('BEGIN');
	CacheTest::start($s, q{UPDATE users SET name = name || '!'});
	($fin, $out, $err, $secs) = CacheTest::wait_done($s, 510);
	ok($fin && $err !~ /ERROR/,
		sprintf('%s session: an UPDATE of 150,000 rows under a template completes (%.1fs)',
			$backend, $secs));
	# a reader that still sees the old rows caches one meanwhile
	$redis->cli('SET', 'users:by_id:77', 'cached from the old row');
	$shm->query_safe(q{SELECT cache_set('users:by_id:77', 'cached from the old row', 0)});
	($out, $err) = CacheTest::run($s, 'COMMIT');
	unlike($err, qr/ERROR/, "$backend session: it commits");

	for my $k (sort keys %keep)
	{
		is($redis->cli('GET', $k), $keep{$k}, "$backend session: Redis key $k survives");
		is(CacheTest::val($shm, qq{SELECT cache_get('$k')}), $keep{$k},
			"$backend session: shmem key $k survives");
	}
	for my $k (@gone, 'users:by_id:77')
	{
		is($redis->cli('EXISTS', $k), '0', "$backend session: Redis key $k is gone");
		is(CacheTest::val($shm, qq{SELECT cache_get('$k') IS NULL}), 't',
			"$backend session: shmem key $k is gone");
	}
	$s->quit;
	$shm->quit;
}

$node->stop;
done_testing();
