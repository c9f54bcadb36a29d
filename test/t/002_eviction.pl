# With cache_ext.shmem_size = 8MB, writing five times the capacity evicts
# instead of failing: every cache_set stores, evictions are counted,
# bytes_used never exceeds bytes_max, the newest keys are readable and
# every key still present holds exactly the value written.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('eviction');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cache_ext');

sub q1 { return $node->safe_psql('postgres', $_[0]); }

my $capacity = 8 * 1024 * 1024;

# Value i: md5(i) repeated 32..127 times, 1 to 4 kB.
my $value = q{repeat(md5(i::text), 32 + i % 96)};
my $n = 16000;    # about 40MB in all

my $stored = 0;
my $chunk = 2000;
for (my $lo = 1; $lo <= $n; $lo += $chunk)
{
	my $hi = $lo + $chunk - 1;
	$stored += q1(qq{
		SELECT count(*) FILTER (WHERE cache_set('fill:' || i, $value, 0))
		FROM generate_series($lo, $hi) AS i});
}
is($stored, $n, "all $n sets (about 40MB into 8MB) stored, none refused, no error");

my ($evictions, $entries, $bytes_used, $bytes_max) = split /\|/,
  q1(q{SELECT evictions, entries, bytes_used, bytes_max FROM cache_stats()});
note("evictions=$evictions entries=$entries bytes_used=$bytes_used bytes_max=$bytes_max");
cmp_ok($evictions, '>', 0, 'evictions were counted');
cmp_ok($entries, '>', 0, 'entries remain');
cmp_ok($entries, '<', $n, 'not every entry fits');
cmp_ok($bytes_max, '>', 0, 'bytes_max is reported');
cmp_ok($bytes_max, '<=', $capacity, 'bytes_max is within shmem_size');
cmp_ok($bytes_used, '<=', $bytes_max, 'bytes_used <= bytes_max');

# the newest keys survive
is(q1(qq{
	SELECT count(*) FROM generate_series($n - 99, $n) AS i
	WHERE cache_get('fill:' || i) IS NOT DISTINCT FROM $value}),
	'100', 'the 100 most recently set keys are readable with their values');

# whatever is still present is intact
my ($present, $wrong) = split /\|/, q1(qq{
	SELECT count(v), count(v) FILTER (WHERE v <> $value)
	FROM (SELECT i, cache_get('fill:' || i) AS v FROM generate_series(1, $n) AS i) s});
note("present after the fill: $present");
cmp_ok($present, '>', 0, 'some keys are present');
is($wrong, '0', 'every present key holds exactly its value');
cmp_ok($present, '<=', $entries, 'present keys <= entries');

# mixed sizes, 16 bytes to about 256kB, a second time round the arena
my $mixed = q{repeat(md5(i::text), 1 + (i * 7919) % 8192)};
is(q1(qq{
	SELECT count(*) FILTER (WHERE cache_set('mixed:' || i, $mixed, 0))
	FROM generate_series(1, 600) AS i}),
	'600', 'mixed sizes (16B to 256kB, about 75MB) all stored');
is(q1(qq{SELECT cache_get('mixed:600') = $mixed FROM (SELECT 600 AS i) s}), 't',
	'the last mixed value is readable');
is(q1(qq{
	SELECT count(*) FROM generate_series(1, 600) AS i
	WHERE cache_get('mixed:' || i) <> $mixed}),
	'0', 'every present mixed value is intact');
is(q1(q{SELECT bytes_used <= bytes_max AND evictions > 0 FROM cache_stats()}), 't',
	'bytes_used <= bytes_max after the mixed fill');

# a value larger than the whole store is refused, not an error
is(q1(q{SET cache_ext.max_value_size = '256MB'; SELECT cache_set('huge', repeat('x', 16 * 1024 * 1024), 0)}),
	'f', 'a value larger than the store is not stored (false, no error)');
is(q1(q{SELECT cache_get('mixed:600') IS NOT NULL OR true}), 't', 'the store still answers');

# the server never restarted
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC|was terminated/, 'no backend crashed');

$node->stop;
done_testing();
