# Issue 14, part 1: Redis invalidation in proportion to the keys removed.
# The worker holds a tracking session on the server-wide Redis
# (CLIENT TRACKING ... BCAST, redirected to its own subscription) and a
# directory of the keys under the namespaces cache_ext invalidates; prefix
# and pattern invalidations UNLINK the directory's keys instead of walking
# the keyspace, and fall back to SCAN whenever the directory cannot vouch
# for a namespace (not filled yet, tracking connection lost, Redis
# restarted, directory full).  Whatever the path, keys written by any
# client under an invalidated prefix are removed, and unrelated keys are
# left alone.  Which path served shows in DEBUG1 messages.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

require "$FindBin::Bin/120_lib.pm";

my $redis = RedisServer->new;
my $node = CacheTest::users_node('keydir', $redis, rows => 10);
my $s = CacheTest::session($node, backend => 'redis',
	set => ['SET client_min_messages = debug1']);

# Which path served the first Redis invalidation in these messages (the
# commit-time repeat comes after it).
sub path_of
{
	my ($err) = @_;
	return 'unknown' unless $err =~
	  /(listed by the key directory|key directory (?:does not cover|could not serve))/;
	return $1 =~ /^listed/ ? 'directory' : 'scan';
}

# Invalidates in session $s: (removed count, which path served it).
sub invalidate
{
	my ($sql) = @_;
	my ($out, $err) = CacheTest::run($s, $sql);
	return ($out, path_of($err));
}

# Polls until the directory serves the prefix invalidation $sql.
sub wait_directory
{
	my ($sql) = @_;
	return CacheTest::poll(20, sub { (invalidate($sql))[1] eq 'directory' });
}

sub tracking_clients
{
	my $list = $redis->cli('CLIENT', 'LIST') // '';
	return scalar grep { /flags=\S*t\S*/ && /sub=1/ } split /\n/, $list;
}

# The worker has no database connection: it is not in pg_stat_activity.
sub worker_pid
{
	my $pm = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
	my $pid = `pgrep -P $pm -f 'cache_ext worker'`;
	chomp $pid;
	return $pid;
}

# ---- the tracking session ----

ok(CacheTest::poll(10, sub { tracking_clients() == 1 }),
	'the worker holds one tracking connection, subscribed');

# ---- the directory serves a namespace once filled ----

$redis->cli('SET', "orders:old$_", 'x') for 1 .. 5;
$redis->cli('SET', 'unrelated', 'keep');
my ($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('orders:')});
is($path, 'scan', 'a prefix never invalidated before is walked with SCAN');
is($n, 5, 'and its keys are removed');
ok(wait_directory(q{SELECT cache_invalidate_prefix('orders:')}),
	'once the worker has filled its namespace, the directory serves it');
$redis->cli('SET', "orders:new$_", 'x') for 1 .. 5;
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('orders:')});
is("$n $path", '5 directory', 'keys written since are removed through the directory');
ok(wait_directory(q{SELECT cache_invalidate_prefix('users:all')}),
	'the prefix target of cache_attach is served by the directory');

# keys another client writes are tracked
$redis->cli('SET', "users:all:$_", 'x') for 1 .. 20;
$redis->cli('SET', 'users:all', '[all users]');
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('users:all')});
is($path, 'directory', 'written by another client: served by the directory');
is($n, 21, 'every key another client wrote under the prefix is removed');
is($redis->cli('EXISTS', 'users:all', 'users:all:1', 'users:all:20'), '0',
	'none is left in Redis');
is($redis->cli('GET', 'unrelated'), 'keep', 'an unrelated key is left alone');

# a trigger's invalidation takes the same path
$redis->cli('SET', 'users:all', '[all users]');
$redis->cli('SET', 'users:all:page2', 'x');
my ($out, $err) = CacheTest::run($s, q{UPDATE users SET name = 'new' WHERE user_id = 7});
is(path_of($err), 'directory', 'an UPDATE under cache_attach uses the directory');
is($redis->cli('EXISTS', 'users:all', 'users:all:page2'), '0',
	'and removes the keys under its prefix target');

# patterns: the literal start picks the namespace, the pattern filters
$redis->cli('SET', "users:all:p$_", 'x') for 1 .. 3;
$redis->cli('SET', 'users:all:q1', 'x');
($n, $path) = invalidate(q{SELECT cache_invalidate_pattern('users:all:p*')});
is("$n $path", '3 directory', 'a pattern under a complete namespace: the directory, filtered');
is($redis->cli('EXISTS', 'users:all:q1'), '1', 'a key the pattern does not match stays');

# a key longer than a directory entry holds (100 bytes) is listed all the same
my $long = 'users:all:' . ('L' x 300);
$redis->cli('SET', $long, 'x');
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('users:all')});
is("$n $path", '2 directory', 'a 310-byte key: served by the directory');
is($redis->cli('EXISTS', $long), '0', 'the long key is removed');

# ---- the barrier: a write whose notification the worker has not consumed ----

# Another PostgreSQL server sharing this Redis writes barrier keys of its
# own under the same prefix, here with sequence numbers far beyond ours, for
# every process slot: they must not pass for this server's barriers.
$redis->cli('MSET',
	map { ("cache_ext:barrier:$_:18446744073709551615", 'x',
		   "cache_ext:barrier:$_:99999999999999999999999", 'x') } 0 .. 299);
# a barrier of ours passes only once the worker has consumed them
invalidate(q{SELECT cache_invalidate_prefix('users:all')});

my $wpid = worker_pid();
kill 'STOP', $wpid;
$redis->cli('SET', 'users:all:late', 'written while the worker sleeps');
CacheTest::run($s, 'SET cache_ext.redis_command_timeout = 10000');
CacheTest::start($s, q{SELECT cache_invalidate_prefix('users:all')});
usleep(500_000);
kill 'CONT', $wpid;
my ($finished, $out2, $err2) = CacheTest::wait_done($s, 30);
ok($finished, 'the invalidation finishes once the worker runs again');
is(path_of($err2), 'directory', 'it waited for the barrier, then used the directory');
is($redis->cli('EXISTS', 'users:all:late'), '0',
	'a key written just before the invalidation, not yet consumed by the worker, is removed');
CacheTest::run($s, 'RESET cache_ext.redis_command_timeout');
$redis->cli('UNLINK', split /\n/, $redis->cli('KEYS', 'cache_ext:barrier:*'));

# ---- Redis refuses the barrier's SET (out of memory, noeviction) ----

$redis->cli('SET', "users:all:oom$_", 'x') for 1 .. 3;
$redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
$redis->cli('CONFIG', 'SET', 'maxmemory', '1');
($out, $err) = CacheTest::run($s, q{SELECT cache_invalidate_prefix('users:all')});
$redis->cli('CONFIG', 'SET', 'maxmemory', '0');
is($out, '3', 'a refused barrier: the keys are still removed (with SCAN, which writes nothing)');
is(path_of($err), 'scan', 'the directory gives way to SCAN');
unlike($err, qr/WARNING/, 'and no store failure is reported');

# ---- more namespaces than the directory keeps: the least used make room ----

CacheTest::run($s, q{SELECT count(cache_invalidate_prefix('ns' || i || ':')) FROM generate_series(1, 140) i});
ok(wait_directory(q{SELECT cache_invalidate_prefix('ns140:')}),
	'the 140th namespace registered (the directory keeps 128) is served once filled');
$redis->cli('SET', "ns140:k$_", 'x') for 1 .. 2;
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('ns140:')});
is("$n $path", '2 directory', 'and its keys are removed through the directory');
ok(wait_directory(q{SELECT cache_invalidate_prefix('users:all')}),
	'users:all (used since) is still, or again, served by the directory');

# ---- a session on another Redis URL keeps SCAN ----

my $other = CacheTest::session($node, backend => 'redis',
	set => [
		"SET cache_ext.redis_url = 'redis://localhost:" . $redis->port . "/0'",
		'SET client_min_messages = debug1'
	]);
$redis->cli('SET', 'users:all:x', 'x');
($out, $err) = CacheTest::run($other, q{SELECT cache_invalidate_prefix('users:all')});
is("$out " . path_of($err), '1 scan',
	'a session whose redis_url differs from the server-wide one uses SCAN');
$other->quit;

# ---- a queued invalidation for another URL: delivered, the worker carries on ----

my $pid_before = worker_pid();
$redis->cli('SET', 'users:all', 'stale');
$redis->cli('CLIENT', 'PAUSE', '1500', 'ALL');
my ($rc) = RedisServer::sql($node,
	"SET cache_ext.redis_url = 'redis://localhost:" . $redis->port . "/0';
	 UPDATE users SET name = 'queued' WHERE user_id = 3");
is($rc, 0, 'an UPDATE whose Redis invalidation times out commits (it is queued)');
ok(CacheTest::poll(15, sub { $redis->cli('EXISTS', 'users:all') eq '0' }),
	'the worker delivers it, under the URL it was queued for');
is(worker_pid(), $pid_before, 'and keeps running');
ok(CacheTest::poll(10, sub { tracking_clients() == 1 }),
	'with its tracking session on the server-wide URL');

# ---- the tracking connection is killed ----

ok(wait_directory(q{SELECT cache_invalidate_prefix('users:all')}),
	'before the kill: the directory serves users:all');
my $logpos = -s $node->logfile;
$redis->cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
$redis->cli('SET', "users:all:during_kill$_", 'x') for 1 .. 3;
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('users:all')});
is("$n $path", '3 scan', 'right after the kill: SCAN, and the keys are removed');
ok(CacheTest::poll(10, sub {
	slurp_file($node->logfile, $logpos) =~ /lost the tracking connection to Redis/ }),
	'the worker logs the loss');
# it retries every second, whatever else happens (nothing wakes it here)
ok(CacheTest::poll(5, sub { tracking_clients() == 1 }),
	'the worker opens a new tracking connection within seconds')
  or diag($redis->cli('CLIENT', 'LIST'));
ok(wait_directory(q{SELECT cache_invalidate_prefix('users:all')}),
	'the directory serves users:all again once rebuilt');
$redis->cli('SET', "users:all:after_kill$_", 'x') for 1 .. 4;
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('users:all')});
is("$n $path", '4 directory', 'keys written after the new connection are tracked');

# ---- FLUSHALL by another client ----

$redis->cli('FLUSHALL');
$redis->cli('SET', "users:all:after_flush$_", 'x') for 1 .. 2;
ok(wait_directory(q{SELECT cache_invalidate_prefix('users:all')}),
	'after a FLUSHALL the directory is rebuilt');
$redis->cli('SET', "users:all:after_flush$_", 'x') for 1 .. 2;
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('users:all')});
is("$n $path", '2 directory', 'and tracks the keys written since');

# ---- Redis restarts ----

$redis->stop;
$redis->start;
$redis->cli('SET', "users:all:restart$_", 'x') for 1 .. 3;
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('users:all')});
is($n, 3, 'right after a Redis restart, the keys are removed (by SCAN or a rebuilt directory)');
ok(CacheTest::poll(15, sub { tracking_clients() == 1 }),
	'the worker tracks the restarted Redis');
ok(wait_directory(q{SELECT cache_invalidate_prefix('users:all')}),
	'the directory serves users:all again');
$redis->cli('SET', "users:all:restart$_", 'x') for 1 .. 3;
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('users:all')});
is("$n $path", '3 directory', 'and tracks keys written after the restart');

# ---- the directory overflows ----

$s->quit;
$node->append_conf('postgresql.conf', "cache_ext.redis_key_directory_size = 16kB\n");
$node->restart;
$s = CacheTest::session($node, backend => 'redis',
	set => ['SET client_min_messages = debug1']);
ok(wait_directory(q{SELECT cache_invalidate_prefix('users:all')}),
	'a 16kB directory (about 120 keys) serves users:all');
$logpos = -s $node->logfile;
$redis->cli('EVAL',
	q{for i = 1, 300 do redis.call('SET', 'users:all:o' .. i, 'x') end}, '0');
ok(CacheTest::poll(10, sub {
	slurp_file($node->logfile, $logpos) =~ /the Redis key directory is full/ }),
	'300 keys under users:all overflow it, and the worker says so');
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('users:all')});
is("$n $path", '300 scan', 'an overflowed namespace is walked with SCAN: every key is removed');
is($redis->cli('EXISTS', 'users:all:o1', 'users:all:o300'), '0', 'none is left');
ok(wait_directory(q{SELECT cache_invalidate_prefix('users:all')}),
	'once its keys fit again, the namespace is rebuilt and served by the directory');

# a namespace not invalidated for a minute makes room for an active one
ok(wait_directory(q{SELECT cache_invalidate_prefix('idle:')}),
	'the directory serves idle:');
$redis->cli('EVAL', q{for i = 1, 80 do redis.call('SET', 'idle:' .. i, 'x') end}, '0');
sleep(62);
invalidate(q{SELECT cache_invalidate_prefix('users:all')});
$redis->cli('EVAL', q{for i = 1, 80 do redis.call('SET', 'users:all:n' .. i, 'x') end}, '0');
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('users:all')});
is("$n $path", '80 directory',
	'keys of an idle namespace give way: the active one still fits and is served by the directory');
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('idle:')});
is("$n $path", '80 scan', 'the idle namespace, freed, is walked with SCAN next time');

# ---- a reload that changes cache_ext.key_prefix replaces the tracking session ----

$s->quit;
my $id_before = $redis->cli('CLIENT', 'LIST', 'TYPE', 'pubsub');
$node->safe_psql('postgres',
	"ALTER SYSTEM SET cache_ext.key_prefix = 'app1:'; SELECT pg_reload_conf()");
ok(CacheTest::poll(10, sub {
	my $l = $redis->cli('CLIENT', 'LIST', 'TYPE', 'pubsub') // '';
	$l ne $id_before && $l =~ /flags=\S*t/ }),
	'after a reload that changes key_prefix, the worker tracks on a new connection');
$s = CacheTest::session($node, backend => 'redis',
	set => ['SET client_min_messages = debug1']);
ok(wait_directory(q{SELECT cache_invalidate_prefix('users:all')}),
	'the directory serves the new key prefix');
$redis->cli('SET', "app1:users:all:$_", 'x') for 1 .. 3;
$redis->cli('SET', 'users:all:other_prefix', 'x');
($n, $path) = invalidate(q{SELECT cache_invalidate_prefix('users:all')});
is("$n $path", '3 directory', 'keys under the new prefix are removed through the directory');
is($redis->cli('EXISTS', 'users:all:other_prefix'), '1', 'keys outside it are not');

$s->quit;
done_testing();
