# DROP DATABASE takes the dropped database's keys out of the shared-memory
# store: they would otherwise hold memory until evicted, and a database
# created later with the same OID would see them.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dropdb');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
});
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE doomed');
$node->safe_psql('doomed', 'CREATE EXTENSION cache_ext');
is($node->safe_psql('doomed',
		q{SELECT count(cache_set('d:' || i, repeat('x', 100), 0)) FROM generate_series(1, 3) i}),
	'3', 'three keys set in the database to drop');
is($node->safe_psql('doomed', 'SELECT entries FROM cache_stats()'), '3',
	'its cache_stats() counts them');

$node->safe_psql('postgres', 'CREATE EXTENSION cache_ext');
$node->safe_psql('postgres', q{SELECT cache_set('keep', 'kept', 0)});

my ($stdout, $stderr);
$node->psql('postgres', 'SET client_min_messages = debug1; DROP DATABASE doomed',
	stdout => \$stdout, stderr => \$stderr, on_error_die => 1);
like($stderr, qr/cache_ext: removed 3 keys of dropped database \d+/,
	'DROP DATABASE removed exactly the dropped database\'s three keys');

is($node->safe_psql('postgres', q{SELECT cache_get('keep')}), 'kept',
	'another database\'s key is untouched');

$node->safe_psql('postgres', 'CREATE DATABASE reborn');
$node->safe_psql('reborn', 'CREATE EXTENSION cache_ext');
is($node->safe_psql('reborn', q{SELECT entries FROM cache_stats()}), '0',
	'a new database starts with no entries');

$node->stop;
done_testing();
