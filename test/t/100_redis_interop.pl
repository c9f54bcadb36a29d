# The Redis store shares its keys with any other Redis client: values are
# plain strings under cache_ext.key_prefix || key with native TTLs, binary
# safe, and the bulk removals take prefixes literally.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/100_redis_lib.pm";

my $redis = RedisServer->new;
my $node = RedisServer::cache_node('interop', $redis);

sub q1 { return $node->safe_psql('postgres', $_[0]); }

# ---- interop with redis-cli, both ways, and native TTLs ----

is(q1(q{SELECT cache_set('user:1', 'alice', 100)}), 't', 'set from SQL');
is($redis->cli('GET', 'user:1'), 'alice', 'redis-cli reads the key set from SQL');
my $ttl = $redis->cli('TTL', 'user:1');
ok($ttl > 90 && $ttl <= 100, "redis-cli sees the native TTL ($ttl)");

q1(q{SELECT cache_set('forever', 'x', 0)});
is($redis->cli('TTL', 'forever'), '-1', 'a TTL of 0 is a key without expiry in Redis');
is(q1(q{SELECT cache_ttl('forever')}), '-1', 'cache_ttl says -1 for it');

q1(q{SET cache_ext.default_ttl = 42; SELECT cache_set('dflt', 'x')});
$ttl = $redis->cli('TTL', 'dflt');
ok($ttl > 32 && $ttl <= 42, "a NULL TTL gives the key cache_ext.default_ttl in Redis ($ttl)");

$redis->cli('SET', 'app:written', 'by the application', 'EX', '50');
is(q1(q{SELECT cache_get('app:written')}), 'by the application',
	'SQL reads a key written by redis-cli');
$ttl = q1(q{SELECT cache_ttl('app:written')});
ok($ttl > 40 && $ttl <= 50, "cache_ttl reads the TTL redis-cli set ($ttl)");
is(q1(q{SELECT cache_ttl('absent') IS NULL}), 't', 'cache_ttl of an absent key is NULL');

$redis->cli('DEL', 'user:1');
is(q1(q{SELECT cache_get('user:1') IS NULL}), 't',
	'a key deleted by redis-cli is a miss');
is(q1(q{SELECT cache_delete('app:written')}), 't', 'cache_delete removes a live key');
is($redis->cli('EXISTS', 'app:written'), '0', 'and redis-cli no longer sees it');
is(q1(q{SELECT cache_delete('app:written')}), 'f', 'deleting it again removes nothing');

# ---- binary-safe values and keys ----

my %values = (
	newline => "line1\nline2",
	crlf => "a\r\nb\r\n",
	unicode => "h\x{e9}llo \x{4e16}\x{754c} \x{1f600}",
	quotes => q{it's "quoted" and spaced   out},
	protocol => "x\r\n*1\r\n\$8\r\nFLUSHALL\r\n",
);
# an E'' literal of the UTF-8 bytes of a Perl string
sub e_literal
{
	my $bytes = shift;
	utf8::encode($bytes);
	return "E'" . join('', map { sprintf('\\x%02x', $_) } unpack('C*', $bytes)) . "'";
}

$redis->cli('SET', 'sentinel', 'still here');
for my $name (sort keys %values)
{
	my $lit = e_literal($values{$name});
	my $raw = $values{$name};
	utf8::encode($raw);
	is(q1("SELECT cache_set('bin:$name', $lit, 0)"), 't', "a value with $name is stored");
	is(q1("SELECT cache_get('bin:$name') = $lit"), 't',
		"the value with $name reads back exactly");
	is($redis->cli('STRLEN', "bin:$name"), length($raw),
		"Redis holds exactly the bytes of the value with $name");
}
is($redis->cli('GET', 'sentinel'), 'still here',
	'a value that looks like a Redis command is only a value');

is(q1(q{SELECT cache_set(E'key with spaces\n*and* [glob] chars', 'v', 0)}), 't',
	'a key with spaces, a newline and glob characters is stored');
is(q1(q{SELECT cache_get(E'key with spaces\n*and* [glob] chars')}), 'v',
	'and read back');
is(q1(q{SELECT cache_set('js', '{"a": [1, 2]}'::jsonb, 0)}), 't', 'a jsonb value is stored');
is($redis->cli('GET', 'js'), '{"a": [1, 2]}', 'as its JSON text');

# ---- cache_get_many: one MGET ----

$redis->cli('CONFIG', 'RESETSTAT');
is( q1(q{SELECT string_agg(key || '=' || value, ',' ORDER BY key)
		 FROM cache_get_many(ARRAY['forever', 'nope', 'bin:newline', 'js'])}),
	qq{bin:newline=line1\nline2,forever=x,js={"a": [1, 2]}},
	'cache_get_many returns the present keys');
my $stats = $redis->cli('INFO', 'commandstats');
like($stats, qr/cmdstat_mget:calls=1,/, 'cache_get_many made a single MGET');
unlike($stats, qr/cmdstat_get:/, 'and no GET');

# ---- a key of another type ----

$redis->cli('RPUSH', 'a:list', 'x');
my ($rc, $out, $err) = RedisServer::sql($node, q{SELECT cache_get('a:list') IS NULL});
is($out, 't', 'a key holding a list reads as a miss');
like($err, qr/WARNING:  cache_ext: redis store failed to read a value.*\n.*WRONGTYPE/,
	'with a WARNING that says why');

# ---- prefix and pattern invalidation ----

$redis->cli('FLUSHDB');
for my $k ('a*b:1', 'a*b:2', 'aXb:1', 'a*b', 'q?[x]\\:1', 'qZ[x]\\:1', 'users:by_id:1',
	'users:by_id:2', 'users:all')
{
	$redis->cli('SET', $k, 'v');
}
is(q1(q{SELECT cache_invalidate_prefix('a*b:')}), '2',
	'invalidating the prefix a*b: removes the two keys that start with it');
is($redis->cli('EXISTS', 'aXb:1'), '1', 'a * in a prefix is not a wildcard: aXb:1 stays');
is($redis->cli('EXISTS', 'a*b'), '1', 'a*b, which does not start with a*b:, stays');
is(q1(q{SELECT cache_invalidate_prefix('q?[x]\:')}), '1',
	'a prefix with ?, [, ] and \\ is taken literally');
is($redis->cli('EXISTS', 'qZ[x]\\:1'), '1', 'and only the key that starts with it goes');
is(q1(q{SELECT cache_invalidate_pattern('users:by_id:*')}), '2',
	'a pattern removes the keys that match it');
is($redis->cli('EXISTS', 'users:all'), '1', 'and only those');

# many keys: the SCAN walk takes many steps
q1(q{SELECT count(cache_set('many:' || i, 'v' || i, 0)) FROM generate_series(1, 5000) i});
$redis->cli('SET', 'manx:1', 'v');
is($redis->cli('DBSIZE'), '5005', '5000 keys more in Redis');
is(q1(q{SELECT cache_invalidate_prefix('many:')}), '5000',
	'a prefix invalidation removes and counts 5000 keys');
is($redis->cli('DBSIZE'), '5', 'and leaves the others');
is(q1(q{SELECT entries FROM cache_stats()}), '5', 'cache_stats counts the keys in Redis');
is(q1(q{SELECT bytes_used > 0 FROM cache_stats()}), 't', 'cache_stats reads Redis memory use');

is(q1(q{SELECT cache_flush()}), '5', 'cache_flush with no key prefix empties the database');
is($redis->cli('DBSIZE'), '0', 'Redis is empty');

# ---- cache_ext.key_prefix ----

$redis->cli('SET', 'other', 'not ours');
is( q1(q{SET cache_ext.key_prefix = 'app1:*'; SELECT cache_set('k', 'v', 0)}),
	't', 'set under a key prefix');
is($redis->cli('GET', 'app1:*k'), 'v', 'the Redis key is prefix || key');
$redis->cli('SET', 'app1:Xk', 'not under the prefix');
is( q1(q{SET cache_ext.key_prefix = 'app1:*';
		 SELECT cache_get('k') || ' ' || (SELECT entries FROM cache_stats())}),
	'v 1', 'reads go through the prefix, and entries counts only its keys');
is(q1(q{SET cache_ext.key_prefix = 'app1:*'; SELECT cache_flush()}), '1',
	'cache_flush removes only the keys under the prefix (taken literally)');
is($redis->cli('GET', 'other'), 'not ours', 'a key outside the prefix stays');
is($redis->cli('GET', 'app1:Xk'), 'not under the prefix',
	'a key matching the prefix as a pattern stays');

$node->stop;
done_testing();
