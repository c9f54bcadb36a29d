# The DEBUG1 trace an application developer turns on to see whether the
# cache works: one line per hit, miss, set, delete and invalidation, naming
# the key.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('debuglog');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cache_ext');

my ($stdout, $stderr);
$node->psql('postgres', q{
SET client_min_messages = debug1;
SELECT cache_get('users:by_id:7');
SELECT cache_set('users:by_id:7', '{"id": 7}', 60);
SELECT cache_get('users:by_id:7');
SELECT cache_delete('users:by_id:7');
SELECT cache_invalidate_prefix('users:');
SELECT cache_invalidate_pattern('orders:*');
}, stdout => \$stdout, stderr => \$stderr, on_error_die => 1);

like($stderr, qr/DEBUG:  cache_ext: miss key "users:by_id:7"/, 'a miss is logged with its key');
like($stderr, qr/DEBUG:  cache_ext: set key "users:by_id:7"/, 'a set is logged with its key');
like($stderr, qr/DEBUG:  cache_ext: hit key "users:by_id:7"/, 'a hit is logged with its key');
like($stderr, qr/DEBUG:  cache_ext: deleted key "users:by_id:7"/, 'a delete is logged with its key');
like($stderr, qr/DEBUG:  cache_ext: invalidate prefix "users:" removed 0 keys/,
	'a prefix invalidation is logged with the prefix and the count');
like($stderr, qr/DEBUG:  cache_ext: invalidate pattern "orders:\*" removed 0 keys/,
	'a pattern invalidation is logged with the pattern and the count');

# nothing is logged at the default level
$node->psql('postgres', q{SELECT cache_get('quiet')},
	stdout => \$stdout, stderr => \$stderr, on_error_die => 1);
unlike($stderr, qr/cache_ext:/, 'nothing is logged at the default client_min_messages');

$node->stop;
done_testing();
