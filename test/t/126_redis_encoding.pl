# A value that another Redis client wrote and that is not valid text in the
# database encoding (invalid UTF-8, or a NUL byte) is never returned as
# text: cache_get misses and reports it like a store failure (a WARNING in
# "warn" mode, an ERROR in "error" mode), cache_get_many gives no row for
# it, and valid values around it still read.
use strict;
use warnings;

use FindBin;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/100_redis_lib.pm";

my $redis = RedisServer->new;
my $node = RedisServer::cache_node('encoding', $redis);

# SET key value with exact bytes, as RESP over a socket
sub raw_set
{
	my ($key, $value) = @_;
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $redis->port)
	  or die "connect: $!";
	binmode($sock);
	print $sock "*3\r\n\$3\r\nSET\r\n\$" . length($key) . "\r\n$key\r\n\$"
	  . length($value) . "\r\n$value\r\n";
	my $reply = <$sock>;
	close($sock);
	return $reply;
}

like(raw_set('enc:bad', "caf\xe9"), qr/^\+OK/, 'another client stores Latin-1 bytes');
like(raw_set('enc:nul', "a\0b"), qr/^\+OK/, 'another client stores a NUL byte');
like(raw_set('enc:good', "caf\xc3\xa9"), qr/^\+OK/, 'another client stores valid UTF-8');

my ($rc, $out, $err) = RedisServer::sql($node, q{SELECT cache_get('enc:bad') IS NULL});
is($out, 't', 'invalid UTF-8 reads as a miss');
like($err, qr/not valid text in encoding "UTF8"/, 'and is reported as a WARNING');

($rc, $out, $err) = RedisServer::sql($node, q{SELECT cache_get('enc:nul') IS NULL});
is($out, 't', 'a NUL byte reads as a miss');

($rc, $out, $err) = RedisServer::sql($node, q{SELECT cache_get('enc:good')});
is($out, "caf\xc3\xa9", 'a valid value still reads');

($rc, $out, $err) = RedisServer::sql($node,
	q{SELECT string_agg(key, ',' ORDER BY key) FROM cache_get_many(ARRAY['enc:bad', 'enc:good', 'enc:nul'])});
is($out, 'enc:good', 'cache_get_many gives a row for the valid value only');
like($err, qr/2 values in Redis are not valid text/, 'and reports the two others');

($rc, $out, $err) = RedisServer::sql($node,
	q{SET cache_ext.on_error = 'error'; SELECT cache_get('enc:bad')});
isnt($rc, 0, 'in "error" mode the read fails');
like($err, qr/redis store failed to read a value/, 'with the store failure ERROR');

done_testing();
