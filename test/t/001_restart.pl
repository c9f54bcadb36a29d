# The shared-memory store lives only as long as the server's shared memory:
# a restart (fast or immediate) and a crash-restart after a backend dies
# leave it empty, and it works normally afterwards.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('restart');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cache_ext');

sub q1 { return $node->safe_psql('postgres', $_[0]); }

is(q1(q{SELECT cache_set('k', 'v1', 0)}), 't', 'set a key that never expires');
is(q1(q{SELECT cache_set('k2', 'v2')}), 't', 'set a key with the default TTL');
is(q1(q{SELECT cache_get('k')}), 'v1', 'readable from another session before the restart');
is(q1(q{SELECT entries FROM cache_stats()}), '2', 'two entries before the restart');

# a clean restart
$node->restart;
is(q1(q{SELECT cache_get('k') IS NULL AND cache_get('k2') IS NULL}), 't',
	'every key is gone after a restart');
is(q1(q{SELECT entries || ' ' || (bytes_used <= bytes_max) FROM cache_stats()}), '0 true',
	'the store is empty after a restart');
is(q1(q{SELECT cache_set('k', 'after', 0)}), 't', 'set works after the restart');
is(q1(q{SELECT cache_get('k')}), 'after', 'get works after the restart');

# an immediate shutdown (no shutdown checkpoint)
$node->stop('immediate');
$node->start;
is(q1(q{SELECT cache_get('k') IS NULL}), 't', 'the key is gone after an immediate shutdown');

# a crash-restart: kill -9 a backend, the postmaster reinitialises shared memory
q1(q{SELECT cache_set('crash', 'x', 0)});
# a session that sleeps, found through pg_stat_activity, then killed
my ($out, $err) = ('', '');
my $sleeper = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', 'SELECT pg_sleep(600) AS cache_ext_victim' ],
	'>', \$out, '2>', \$err);
ok($node->poll_query_until('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%AS cache_ext_victim' AND pid <> pg_backend_pid()}, '1'),
	'the session to kill is running');
my $pid = q1(q{SELECT pid FROM pg_stat_activity WHERE query LIKE '%AS cache_ext_victim' AND pid <> pg_backend_pid()});
kill 'KILL', $pid;
$sleeper->finish;
ok($node->poll_query_until('postgres', 'SELECT 1', '1'),
	'the server accepts connections again after the crash-restart');
is(q1(q{SELECT cache_get('crash') IS NULL}), 't',
	'the store is empty after the crash-restart');
is(q1(q{SELECT cache_set('crash', 'y', 0)}), 't', 'set works after the crash-restart');
is(q1(q{SELECT cache_get('crash')}), 'y', 'get works after the crash-restart');

$node->stop;
done_testing();
