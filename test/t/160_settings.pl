# Settings that fail loudly (issue 16): a cache_ext.shmem_size the server
# cannot honour stops it from starting, saying why; the largest value an
# 8MB store holds, as docs/settings.md states it; Redis failures reported
# as what they are: a call refused in the retry pause says that Redis was
# not asked, and a second, different failure within 10 s is reported.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

require "$FindBin::Bin/100_redis_lib.pm";

# ---- cache_ext.shmem_size ----

my $n = 0;
sub try_start
{
	my ($size) = @_;
	my $node = PostgreSQL::Test::Cluster->new('size' . ++$n);
	$node->init;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'cache_ext'\ncache_ext.shmem_size = '$size'\n");
	my $started = $node->start(fail_ok => 1);
	my $log = slurp_file($node->logfile);
	return ($node, $started, $log);
}

my @refused = (
	[ '7MB', qr/FATAL:  cache_ext\.shmem_size must be at least 8MB, not "7MB"/ ],
	[ '300GB', qr/FATAL:  cache_ext\.shmem_size must be at most 256GB, not "300GB"/ ],
	[ 'lots', qr/FATAL:  invalid value for parameter "cache_ext\.shmem_size": "lots"/ ],
	[ '5000TB', qr/FATAL:  invalid value for parameter "cache_ext\.shmem_size": "5000TB"/ ]);
# more than this machine has, within the store's own limit
my ($mem_kb) = slurp_file('/proc/meminfo') =~ /^MemTotal:\s+(\d+) kB/m;
push @refused, [ '250GB', qr/FATAL:  cache_ext\.shmem_size \("250GB"\) is larger than this machine's memory/ ]
  if $mem_kb && $mem_kb < 250 * 1024 * 1024;
for my $case (@refused)
{
	my ($size, $why) = @$case;
	my ($node, $started, $log) = try_start($size);
	ok(!$started, "shmem_size = '$size': the server does not start");
	like($log, $why, "shmem_size = '$size': the log says why");
	$node->stop('immediate') if $started;
}

my ($node, $started) = try_start('8MB');
ok($started, "shmem_size = '8MB' starts");
$node->safe_psql('postgres', 'CREATE EXTENSION cache_ext');
is($node->safe_psql('postgres', 'SHOW cache_ext.shmem_size'), '8MB', 'with the store asked for');

# The largest value an 8MB store holds with a 1-byte key (docs/settings.md):
# half the store's blocks.  A larger one is not stored and is counted.
$node->safe_psql('postgres', q{
CREATE FUNCTION largest(keylen int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    lo int := 1;
    hi int := 16 * 1024 * 1024;
    mid int;
BEGIN
    SET LOCAL cache_ext.max_value_size = '16MB';
    WHILE lo < hi LOOP
        mid := (lo + hi + 1) / 2;
        PERFORM cache_delete(repeat('k', keylen));
        IF cache_set(repeat('k', keylen), repeat('x', mid), 0) THEN
            lo := mid;
        ELSE
            hi := mid - 1;
        END IF;
    END LOOP;
    PERFORM cache_delete(repeat('k', keylen));
    RETURN lo;
END $$});
my $largest = $node->safe_psql('postgres', 'SELECT largest(1)');
note("largest value in an 8MB store: $largest bytes");
ok($largest >= 3_600_000 && $largest < 4 * 1024 * 1024,
	"an 8MB store holds values up to 3.6 MB ($largest bytes), as docs/settings.md says");
my $too_large = $node->safe_psql('postgres', q{SELECT sets_too_large FROM cache_ext_stats WHERE store = 'shmem'});
ok($too_large > 0, "the values over it are counted in sets_too_large ($too_large)");
is($node->safe_psql('postgres', q{
	SET cache_ext.max_value_size = '16MB';
	SELECT cache_set('k', repeat('x', 4 * 1024 * 1024), 0), cache_get('k') IS NULL}),
	'f|t', 'a 4MB value is not stored, and leaves no older value behind');
is($node->safe_psql('postgres', q{SELECT sets_too_large FROM cache_ext_stats WHERE store = 'shmem'}),
	$too_large + 1, 'cache_ext_stats counts it in sets_too_large');
$node->stop;

# ---- Redis failures, reported as what they are ----

my $redis = RedisServer->new('--requirepass', 'secret');
my $port = $redis->port;
$redis->stop;
my $rnode = RedisServer::cache_node('failures', $redis, "redis://127.0.0.1:$port/0");

my $s = $rnode->background_psql('postgres', on_error_stop => 0);
sub run
{
	my ($sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

# "error" mode: the call refused in the retry pause does not pretend that
# Redis was asked again
run('SET cache_ext.on_error = error');
my (undef, $err1) = run(q{SELECT cache_get('k')});
like($err1, qr/ERROR:  cache_ext: redis store failed to read a value\nDETAIL:  Could not connect to Redis at 127\.0\.0\.1:$port: Connection refused\./,
	'error mode: the first failure says what Redis did');
my (undef, $err2) = run(q{SELECT cache_get('k')});
like($err2, qr/ERROR:  cache_ext: redis store failed to read a value\nDETAIL:  Redis at 127\.0\.0\.1:$port was not asked: it failed less than 1000 ms ago/,
	'error mode: a call refused in the retry pause says Redis was not asked');
unlike($err2, qr/Connection refused/, 'and does not repeat the earlier failure as its own');

# "warn" mode: one WARNING per failure, a different failure at once
run('SET cache_ext.on_error = warn');
usleep(1_100_000);
my (undef, $w1) = run(q{SELECT cache_get('k')});
like($w1, qr/WARNING:  cache_ext: redis store failed to read a value\nDETAIL:  Could not connect to Redis at 127\.0\.0\.1:$port: Connection refused\./,
	'warn mode: the failure is reported');
my (undef, $w2) = run(q{SELECT cache_get('k')});
is($w2, '', 'the call refused right after is not reported again');
$redis->start;
usleep(1_100_000);
my (undef, $w3) = run(q{SELECT cache_get('k')});
like($w3, qr/WARNING:  cache_ext: redis store failed to read a value\nDETAIL:  Redis at 127\.0\.0\.1:$port answered: NOAUTH Authentication required\./,
	'a second, different failure within 10 s is reported, naming the Redis server');
usleep(1_100_000);
my (undef, $w4) = run(q{SELECT cache_get('k')});
is($w4, '', 'the same failure again within 10 s is not');

$s->quit;
$rnode->stop;
done_testing();
