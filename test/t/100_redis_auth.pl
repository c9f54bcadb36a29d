# cache_ext.redis_url: password, database number, unix socket, bad URLs, and
# a password that no non-superuser (nor any message) ever shows.
use strict;
use warnings;

use Cwd qw(abs_path);
use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/100_redis_lib.pm";

my $password = 'S3cret-pw';
my $redis = RedisServer->new('--requirepass', $password,
	'--unixsocket', 'redis.sock', '--unixsocketperm', '700');
my $port = $redis->port;
my $socket = abs_path($redis->dir) . '/redis.sock';
my $url = "redis://:$password\@127.0.0.1:$port/0";
my $masked = "redis://:***\@127.0.0.1:$port/0";
# statements are not logged: a SET of the URL would be, password and all
my $node = RedisServer::cache_node('auth', $redis, $url, "log_statement = none\n");
$node->safe_psql('postgres', 'CREATE ROLE alice LOGIN');

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub as_alice
{
	return RedisServer::sql($node, $_[0], extra_params => [ '-U', 'alice' ]);
}

# Runs SQL as the superuser after SET cache_ext.redis_url (a separate
# statement) and returns (exit code, stdout, stderr).
sub with_url
{
	my ($u, $sql) = @_;
	$u =~ s/'/''/g;
	return RedisServer::sql($node, "SET cache_ext.redis_url = '$u';\n$sql");
}

# ---- the password works and is never shown ----

is(q1(q{SELECT cache_set('k', 'v', 0)}), 't', 'set through a Redis that requires a password');
is($redis->cli('GET', 'k'), 'v', 'redis-cli reads it');

my ($rc, $out, $err) = as_alice(q{SELECT cache_set('alice', 'a', 0) || ' ' || cache_get('k')});
is($out, 'true v', 'a non-superuser uses the store');
($rc, $out, $err) = as_alice(q{SHOW cache_ext.redis_url});
is($out, $masked, 'SHOW masks the password for a non-superuser');
($rc, $out, $err) = as_alice(
	q{SELECT s::text FROM pg_settings s WHERE name = 'cache_ext.redis_url'});
like($out, qr/\Q$masked\E/, 'pg_settings lists the masked URL');
unlike($out, qr/\Q$password\E/, 'and no column of pg_settings holds the password');
($rc, $out, $err) = as_alice(q{SELECT current_setting('cache_ext.redis_url')});
is($out, $masked, 'current_setting() masks it too');
($rc, $out, $err) = as_alice(q{SET cache_ext.redis_url = 'redis://127.0.0.1:1/0'});
like($err, qr/permission denied to set parameter "cache_ext.redis_url"/,
	'a non-superuser cannot change it');

($rc, $out, $err) = RedisServer::sql($node,
	q{SELECT set_config('cache_ext.redis_url', current_setting('cache_ext.redis_url'), false);
	  SELECT cache_get('k')});
like($out, qr/\nv\z/, 'setting the URL back to the value it reads keeps the password');
is($err, '', 'without any warning');

# ---- wrong password, no password, wrong database ----

($rc, $out, $err) = with_url("redis://:wrongpw\@127.0.0.1:$port/0",
	q{SELECT cache_get('k') IS NULL});
is($out, 't', 'a wrong password: a get is a miss');
like($err, qr/DETAIL:  Authentication to Redis at 127\.0\.0\.1:$port failed: WRONGPASS/,
	'with a WARNING that says authentication failed');
unlike($err, qr/wrongpw/, 'which does not quote the password');

($rc, $out, $err) = with_url("redis://:wrongpw\@127.0.0.1:$port/0",
	qq{SET cache_ext.on_error = error;\nSELECT cache_get('k')});
like($err, qr/ERROR:  cache_ext: redis store failed to read a value\nDETAIL:  Authentication to Redis/,
	'in error mode a wrong password is an ERROR');
unlike($err, qr/wrongpw/, 'which does not quote the password either');

($rc, $out, $err) = with_url("redis://127.0.0.1:$port/0", q{SELECT cache_get('k') IS NULL});
is($out, 't', 'no password: a miss');
like($err, qr/DETAIL:  Redis at 127\.0\.0\.1:$port answered: NOAUTH Authentication required\./,
	'with a WARNING saying which Redis wants authentication');

($rc, $out, $err) = with_url("redis://:$password\@127.0.0.1:$port/99",
	q{SELECT cache_set('k', 'v') || ' ' || coalesce(cache_get('k'), 'miss')});
is($out, 'false miss', 'database 99 does not exist: nothing stored, a miss');
like($err, qr/DETAIL:  Could not select database 99 on Redis at 127\.0\.0\.1:$port: ERR DB index is out of range/,
	'with a WARNING naming the database');

($rc, $out, $err) = with_url("redis://:$password\@127.0.0.1:$port/3",
	q{SELECT cache_set('in3', 'three', 0)});
is($out, 't', 'set in database 3');
is($redis->cli('-n', '3', 'GET', 'in3'), 'three', 'redis-cli finds it in database 3');
is($redis->cli('-n', '0', 'EXISTS', 'in3'), '0', 'and not in database 0');

# ---- unix socket ----

($rc, $out, $err) = with_url("unix://:$password\@$socket?db=2",
	q{SELECT cache_set('unix', 'u', 0)});
is($out, 't', 'set through a unix socket');
is($err, '', 'without any warning');
is($redis->cli('-n', '2', 'GET', 'unix'), 'u', 'in the database the URL names');

# ---- URLs rejected when set, without quoting the password ----

for my $bad (
	[ 'http://127.0.0.1:6379/0', qr/must start with redis:\/\/ or unix:\/\// ],
	[ 'redis://:hunter2@127.0.0.1:99999/0', qr/port must be a number from 1 to 65535/ ],
	[ 'redis://:hunter2@127.0.0.1:6379/zero', qr/database must be a number/ ],
	[ 'redis://:hunter2@/0', qr/host is missing/ ],
	[ 'redis://hunter2@127.0.0.1/0', qr/password must follow a colon/ ],
	[ 'redis://:hunter%zz@127.0.0.1/0', qr/password has a bad %-escape/ ],
	[ 'unix://relative/redis.sock', qr/unix socket URL has no host/ ],
	[ 'unix:///tmp/redis.sock?database=1', qr/only parameter of a unix socket URL is db=N/ ])
{
	my ($u, $why) = @$bad;
	($rc, $out, $err) = with_url($u, 'SELECT 1');
	like($err,
		qr/ERROR:  invalid value for parameter "cache_ext.redis_url"\nDETAIL:  .*$why/,
		"rejected when set: $u");
	unlike($err, qr/hunter/, "and the message does not quote the password of $u");
}
($rc, $out, $err) = RedisServer::sql($node,
	q{DO $$ BEGIN SET cache_ext.redis_url = 'http://x'; EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'sqlstate 22023'; END $$});
like($err, qr/sqlstate 22023/, 'a bad URL is invalid_parameter_value');

# ---- a password that needs escaping ----

my $odd = 'p@ss/w%rd:x';
$redis->cli('CONFIG', 'SET', 'requirepass', $odd);
$redis->{password} = $odd;
($rc, $out, $err) = with_url("redis://:p%40ss%2Fw%25rd:x\@127.0.0.1:$port/0",
	q{SELECT cache_get('k')});
is($out, 'v', 'a password with @, / and % works percent-encoded');
is($err, '', 'without any warning');

unlike(slurp_file($node->logfile), qr/\Q$password\E|p%40ss/,
	'the server log never holds a password');

$node->stop;
done_testing();
