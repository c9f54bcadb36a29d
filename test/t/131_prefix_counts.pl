# Prefix and pattern invalidation on the shared-memory store when the head
# counts say "nothing here" (src/store_shmem.c, heads_absent): every key a
# prefix covers is still removed, whatever its length relative to the 2, 4
# and 8 bytes counted, in the right database only, after overwrites and
# after eviction has moved entries in and out.  (A guard for the fast path:
# it passes on the code before it too, which always scanned.)
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('prefix_counts');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql($_, 'CREATE EXTENSION cache_ext') for qw(postgres other);

sub q1 { return $node->safe_psql($_[1] // 'postgres', $_[0]); }

my @keys = qw(a ab abc abcd abcde abcdefg abcdefgh abcdefghi abcdefghij b bc);
my $list = join(',', map { "'$_'" } @keys);

sub fill
{
	my ($db) = @_;
	q1(qq{SELECT count(cache_set(k, 'v:' || k, 0)) FROM unnest(ARRAY[$list]) k}, $db);
}

sub present
{
	my ($db) = @_;
	return q1(qq{SELECT string_agg(k, ' ' ORDER BY k) FROM unnest(ARRAY[$list]) k
		WHERE cache_get(k) IS NOT NULL}, $db);
}

# prefix => keys left in the first database
my @cases = (
	[ 'abcdefghi', 'a ab abc abcd abcde abcdefg abcdefgh b bc' ],
	[ 'abcdefgh',  'a ab abc abcd abcde abcdefg b bc' ],
	[ 'abcdefg',   'a ab abc abcd abcde b bc' ],
	[ 'abcd',      'a ab abc b bc' ],
	[ 'abc',       'a ab b bc' ],
	[ 'ab',        'a b bc' ],
	[ 'a',         'b bc' ],
	[ 'zzzzzzzzz', 'a ab abc abcd abcde abcdefg abcdefgh abcdefghi abcdefghij b bc' ],
);
for my $c (@cases)
{
	my ($prefix, $left) = @$c;
	fill('postgres');
	fill('other');
	q1(qq{SELECT cache_invalidate_prefix('$prefix')});
	is(present('postgres'), $left, "prefix '$prefix' removes exactly its keys");
	is(present('other'), join(' ', sort @keys), "prefix '$prefix' leaves the other database alone");
	# nothing left under the prefix: a second call removes nothing, and a
	# key set again afterwards is removed by a third
	is(q1(qq{SELECT cache_invalidate_prefix('$prefix')}), '0',
		"prefix '$prefix' again: nothing to remove");
	q1(qq{SELECT cache_set('${prefix}x', 'again', 0)});
	is(q1(qq{SELECT cache_invalidate_prefix('$prefix')}), '1',
		"prefix '$prefix': a key set after the first call is removed by the next");
}

# patterns start with a literal of 0, 2 and 8 bytes
for my $c ([ 'ab*', 'a b bc' ], [ 'abcdefgh?', 'a ab abc abcd abcde abcdefg abcdefgh abcdefghij b bc' ],
	[ '*c', 'a ab abcd abcde abcdefg abcdefgh abcdefghi abcdefghij b' ])
{
	my ($pattern, $left) = @$c;
	fill('postgres');
	q1(qq{SELECT cache_invalidate_pattern('$pattern')});
	is(present('postgres'), $left, "pattern '$pattern' removes exactly its keys");
}

# overwrites, then eviction moving thousands of entries in and out
fill('postgres');
q1(q{SELECT count(cache_set('ow:' || (i % 10), repeat('x', i % 500), 0)) FROM generate_series(1, 1000) i});
is(q1(q{SELECT cache_invalidate_prefix('ow:')}), '10', 'overwritten keys: each removed once');
is(q1(q{SELECT count(cache_set('ev:' || i, repeat('y', 300), 0)) FROM generate_series(1, 60000) i}),
	'60000', 'eviction: 60000 sets of 300 bytes into 8MB');
my $left = q1(q{SELECT count(*) FROM generate_series(1, 60000) i WHERE cache_get('ev:' || i) IS NOT NULL});
cmp_ok($left, '>', 0, "eviction: $left ev: keys remain");
is(q1(q{SELECT cache_invalidate_prefix('ev:')}), $left, 'eviction: the prefix removes every remaining key');
is(q1(q{SELECT count(*) FROM generate_series(1, 60000) i WHERE cache_get('ev:' || i) IS NOT NULL}),
	'0', 'eviction: none left');
is(q1(q{SELECT cache_set('ev:again', 'z', 0) AND cache_invalidate_prefix('ev:') = 1}), 't',
	'eviction: a key set afterwards is found again');

$node->stop;
done_testing();
