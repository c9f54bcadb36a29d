# Crash recovery replays the WAL invalidations (issue 15): a crash between
# a healthy commit and its commit-time repeat loses no Redis invalidation.
#
# A writer invalidates a key in Redis inside its transaction; a reader of
# the old row caches it meanwhile (allowed: the write is not committed);
# the writer commits, and its repeat, which would remove that value, waits
# on a stopped Redis when the server crashes (immediate shutdown).  With
# cache_ext.wal_invalidations on, crash recovery replays the transaction's
# record and the worker removes the stale value; without it the value stays
# until its TTL.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

require "$FindBin::Bin/120_lib.pm";

my $redis = RedisServer->new();
my $node = CacheTest::users_node('crash_repeat', $redis,
	conf => "cache_ext.wal_invalidations = on\n");

sub redis_get { return $redis->cli('GET', $_[0]) // ''; }

my $fetch = q{SELECT cache_fetch('users:by_id:1', 'SELECT name FROM users WHERE user_id = 1', 0)};

my $writer = CacheTest::session($node, backend => 'redis',
	set => ['SET cache_ext.redis_command_timeout = 60000']);
$writer->query_safe('BEGIN');
$writer->query_safe(q{UPDATE users SET name = 'new' WHERE user_id = 1});

# the reader sees the committed (old) row and caches it
like(CacheTest::val(CacheTest::session($node, backend => 'redis'), $fetch),
	qr/user1/, 'a reader caches the old row while the write is not committed');
like(redis_get('users:by_id:1'), qr/user1/, 'Redis holds it');

# the repeat waits on a Redis that takes no writes; the server crashes meanwhile
# (CLIENT PAUSE, not SIGSTOP: the repeat's command, blocked, then goes with
# its dead connection instead of being read from the socket on SIGCONT)
$redis->cli('CLIENT', 'PAUSE', '60000', 'WRITE');
CacheTest::start($writer, 'COMMIT');
usleep(1_000_000);
$node->stop('immediate');
usleep(200_000);
$redis->cli('CLIENT', 'UNPAUSE');
eval { $writer->quit; };
is(redis_get('users:by_id:1') =~ /user1/ ? 1 : 0, 1,
	'after the crash Redis still holds the old row (the repeat did not run)');

$node->start;
is($node->safe_psql('postgres', 'SELECT name FROM users WHERE user_id = 1'),
	'new', 'the write was committed');
ok(CacheTest::poll(30, sub { redis_get('users:by_id:1') !~ /user1/ }),
	'crash recovery replayed the invalidation: the old row left Redis');
like(CacheTest::val(CacheTest::session($node, backend => 'redis'), $fetch),
	qr/new/, 'a read after the restart gets the new row');

$node->stop;
done_testing();
