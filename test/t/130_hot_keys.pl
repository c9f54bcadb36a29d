# Eviction keeps hot keys at every value size (issue 14, part 3).
#
# With cache_ext.shmem_size = 8MB, 100 keys are read regularly (after every
# fifth of the store's capacity written) while five times the capacity of
# other keys is written, at 64 B, 200 B, 1 kB, 4 kB and 16 kB values (the
# contract: any value size up to 16 kB).  At least 90 of the 100 must still
# be there, intact, at the end: a user who reads a key that often expects it
# to stay cached.  (Per-partition SIEVE lost up to half of them.)
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('hot_keys');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cache_ext');

sub q1 { return $node->safe_psql('postgres', $_[0]); }

my $capacity = 8 * 1024 * 1024;
my $nhot = 100;

foreach my $size (64, 200, 1024, 4096, 16384)
{
	# every value distinct, and checkable: the key's md5, repeated
	my $hotval = qq{left(repeat(md5('hot:' || i), $size / 32 + 1), $size)};
	my $coldval = qq{left(repeat(md5(i::text), $size / 32 + 1), $size)};
	my $per_round = int($capacity / $size / 5);
	my $rounds = 25;    # 5 x the capacity, in bytes of values

	q1(q{SELECT cache_flush()});
	is(q1(qq{
		SELECT count(*) FILTER (WHERE cache_set('hot:' || i, $hotval, 0))
		FROM generate_series(1, $nhot) AS i}),
		$nhot, "$size B: the $nhot hot keys are stored");
	my $ev0 = q1(q{SELECT evictions FROM cache_stats()});

	my ($stored, $last_hits) = (0, 0);
	for my $r (0 .. $rounds - 1)
	{
		my $lo = $r * $per_round + 1;
		my $hi = $lo + $per_round - 1;
		my ($s, $h) = split /\n/, q1(qq{
			SELECT count(*) FILTER (WHERE cache_set('cold:$size:' || i, $coldval, 0))
			FROM generate_series($lo, $hi) AS i;
			SELECT count(cache_get('hot:' || i)) FROM generate_series(1, $nhot) AS i});
		$stored += $s;
		$last_hits = $h;
	}
	my $ev = q1(q{SELECT evictions FROM cache_stats()}) - $ev0;
	is($stored, $rounds * $per_round,
		"$size B: all " . ($rounds * $per_round) . " other keys stored (5 x capacity)");
	cmp_ok($ev, '>=', 4 * $capacity / $size / 2,
		"$size B: the other keys evicted each other ($ev evictions)");

	my ($present, $intact) = split /\|/, q1(qq{
		SELECT count(v), count(v) FILTER (WHERE v = $hotval)
		FROM (SELECT i, cache_get('hot:' || i) AS v
		      FROM generate_series(1, $nhot) AS i) s});
	note("$size B: hot keys present at the end: $present (at the last read: $last_hits)");
	cmp_ok($present, '>=', 90, "$size B: at least 90 of the $nhot hot keys survive");
	is($intact, $present, "$size B: every surviving hot key holds its value");
}

is(q1(q{SELECT bytes_used <= bytes_max FROM cache_stats()}), 't',
	'bytes_used <= bytes_max');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC|was terminated/, 'no backend crashed');

$node->stop;
done_testing();
