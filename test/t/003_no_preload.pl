# Without shared_preload_libraries: CREATE EXTENSION works, and every
# function that needs the shared-memory store fails with an ERROR naming the
# line to add to postgresql.conf; nothing crashes and the session goes on.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('no_preload');
$node->init;
$node->start;

is($node->safe_psql('postgres', q{SHOW shared_preload_libraries}), '',
	'cache_ext is not preloaded');
my ($create, $create_out, $create_err) = $node->psql('postgres', 'CREATE EXTENSION cache_ext');
is($create, 0, 'CREATE EXTENSION works without preloading')
  or diag("CREATE EXTENSION said: $create_err");

my $line = qr/shared_preload_libraries = 'cache_ext'/;

my @calls = (
	q{SELECT cache_get('k')},
	q{SELECT cache_set('k', 'v')},
	q{SELECT cache_set('k', '{"a": 1}'::jsonb, 10)},
	q{SELECT * FROM cache_get_many(ARRAY['a', 'b'])},
	q{SELECT cache_delete('k')},
	q{SELECT cache_invalidate_prefix('users:')},
	q{SELECT cache_invalidate_pattern('users:*')},
	q{SELECT cache_ttl('k')},
	q{SELECT cache_flush()},
);
my $has_fetch = $node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_proc WHERE proname = 'cache_fetch'});
push @calls, q{SELECT cache_fetch('k', 'SELECT 1 AS one')} if $has_fetch;

for my $sql (@calls)
{
	my ($ret, $stdout, $stderr) = $node->psql('postgres', $sql);
	isnt($ret, 0, "fails: $sql");
	like($stderr, qr/ERROR:/, "is an ERROR: $sql");
	like($stderr, $line, "names the postgresql.conf line: $sql");
}

# the same session goes on after the error
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT cache_get('k'); SELECT 1 AS still_here},
	on_error_stop => 0);
is($stdout, '1', 'the session answers after the error');

# the explicit backend setting gives the same
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SET cache_ext.backend = 'shmem'; SELECT cache_get('k')});
like($stderr, $line, 'same error with cache_ext.backend = shmem set explicitly');

# LOAD in a session does not make the store appear either
($ret, $stdout, $stderr) = $node->psql('postgres', q{LOAD 'cache_ext'; SELECT cache_get('k')});
like($stderr, $line, 'same error after LOAD');

is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC|was terminated/, 'no backend crashed');

# and once the line is added, the same database works
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'cache_ext'");
$node->restart;
is($node->safe_psql('postgres', q{SELECT cache_set('k', 'v'); SELECT cache_get('k')}), "t\nv",
	'after adding the line and restarting, the store works');

$node->stop;
done_testing();
