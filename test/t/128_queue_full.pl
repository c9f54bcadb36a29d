# A full invalidation queue widens items to their namespace, never further
# (issue 12: "never the whole Redis database").  With Redis down, no
# key_prefix and a 64kB queue: an UPDATE of 3,000 rows under 'r:{id}' does
# not fit as 3,000 keys and is queued as the prefix 'r:', so the
# application's other keys survive its delivery; 3,000 patterns widen to
# their literal start ('p:*:5' to 'p:', not to the literal 'p:*:5', which
# would cover nothing); 3,000 patterns that start
# with a wildcard have no namespace to widen to, so that transaction fails
# instead of being widened to "everything", which once delivered would
# empty the whole Redis database, the application's own keys included.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/100_redis_lib.pm";

my $redis = RedisServer->new;
my $node = RedisServer::cache_node('queuefull', $redis, undef,
	"cache_ext.queue_size = '64kB'\n");

$node->safe_psql('postgres', q{
	CREATE TABLE t (id int PRIMARY KEY, v text);
	INSERT INTO t SELECT g, 'a' FROM generate_series(1, 3000) g;
	SELECT cache_attach('t', 'r:{id}');
});
$redis->cli('SET', 'app:session:1', 'token');
$redis->cli('SET', 'r:7', 'row 7, cached');
$redis->cli('SET', 'x:1', 'matches a pattern below');
$redis->cli('SET', 'p:a:5', 'covered by the pattern p:*:5');

$redis->pause;    # frozen, keeping its data (it does not persist across a restart)

my ($rc, $out, $err) = RedisServer::sql($node, q{UPDATE t SET v = 'b'});
is($rc, 0, 'an UPDATE whose 3,000 invalidations do not fit as keys commits while Redis is down');
is($node->safe_psql('postgres', q{SELECT invalidations_queued FROM cache_stats()}), '1',
	'queued as one item: the template\'s namespace');

# patterns widen to their literal start ('p:*:5' -> 'p:'), which still covers their keys
($rc, $out, $err) = RedisServer::sql($node,
	q{DO $$ BEGIN FOR g IN 1 .. 3000 LOOP PERFORM cache_invalidate_pattern('p:*:' || g); END LOOP; END $$});
is($rc, 0, '3,000 patterns with a literal start are queued, widened to it');

($rc, $out, $err) = RedisServer::sql($node,
	q{DO $$ BEGIN FOR g IN 1 .. 3000 LOOP PERFORM cache_invalidate_pattern('*:' || g); END LOOP; END $$});
isnt($rc, 0, '3,000 patterns with no literal start do not fit and are not widened: the transaction fails');
like($err, qr/could not invalidate Redis keys, nor queue the invalidation/, 'saying why');

$redis->resume;
ok($node->poll_query_until('postgres',
		q{SELECT invalidations_queued = 0 FROM cache_stats()}),
	'the queue drains once Redis is back');
is($redis->cli('EXISTS', 'r:7'), '0', 'the rows\' keys are gone');
is($redis->cli('EXISTS', 'p:a:5'), '0', 'a key a widened pattern covered is gone');
is($redis->cli('GET', 'app:session:1'), 'token',
	'the application\'s own key is still there: nothing widened past a namespace');
is($redis->cli('GET', 'x:1'), 'matches a pattern below', 'nor did the failed transaction remove anything');

$node->stop;
done_testing();
