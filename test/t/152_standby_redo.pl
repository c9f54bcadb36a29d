# Replaying the primary's invalidation records on a hot standby (issue 15,
# review fixes):
#
#   1. a transaction that invalidated 2,000 keys of 90 bytes (a 2,000-row
#      UPDATE under 'acct:{name}') is replayed key by key: the standby's
#      other keys of that namespace survive (its record used to be widened
#      to the namespace past 64 kB);
#   2. a standby restarted while a transaction that began before its
#      restartpoint is still open on the primary refuses sets from
#      snapshots that do not see that transaction's end (its record may
#      have come before the restartpoint, its commit after: the ring would
#      have no slot for it), and stores again once its end is replayed;
#   3. a standby whose Redis is unreachable and whose queue is full logs
#      the "could not queue" WARNING of replay at most once per 10 s, with
#      the count of the others, not once per replayed record.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/120_lib.pm";

my $redis = RedisServer->new();
my $url = 'redis://127.0.0.1:' . $redis->port . '/0';

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
cache_ext.redis_url = '$url'
cache_ext.wal_invalidations = on
});
$primary->start;
$primary->safe_psql('postgres', q{
CREATE EXTENSION cache_ext;
CREATE TABLE acct (id int PRIMARY KEY, name text, balance int);
INSERT INTO acct SELECT g, 'n' || g || ':' || repeat('y', 80), 0
  FROM generate_series(1, 2000) g;
SELECT cache_attach('acct', 'acct:{name}');
});
$primary->backup('b1');

# the standby's own Redis is unreachable (nothing listens on port 1), and
# its queue is the smallest allowed
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b1', has_streaming => 1);
$standby->append_conf('postgresql.conf', q{
cache_ext.redis_url = 'redis://127.0.0.1:1/0'
cache_ext.redis_connect_timeout = 200
cache_ext.queue_size = '64kB'
});
$standby->start;

sub sync_standby
{
	$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
}

# ---- 1: a large transaction is not widened to its namespace ----

sync_standby();
my $key1 = 'acct:n1:' . ('y' x 80);
$standby->safe_psql('postgres', qq{
SET cache_ext.backend = shmem;
SELECT cache_set('acct:keep', 'not a row of acct', 0);
SELECT cache_set('$key1', 'old row 1', 0);
});
$primary->safe_psql('postgres', q{UPDATE acct SET balance = balance + 1});
sync_standby();
is($standby->safe_psql('postgres',
		"SET cache_ext.backend = shmem; SELECT cache_get('$key1') IS NULL"),
	't', 'the standby removed the key of an updated row');
is($standby->safe_psql('postgres',
		q{SET cache_ext.backend = shmem; SELECT cache_get('acct:keep')}),
	'not a row of acct',
	'a 2,000-key transaction is replayed key by key: another key of its namespace survives');

# ---- 2: a standby restart refuses sets that may miss an open transaction ----

my $open = CacheTest::session($primary);
$open->query_safe(q{BEGIN; UPDATE acct SET balance = balance + 1 WHERE id = 2});
$primary->safe_psql('postgres', 'CHECKPOINT');
sync_standby();
$standby->safe_psql('postgres', 'CHECKPOINT');    # a restartpoint after it began
$standby->restart;
my $set = q{SET cache_ext.backend = shmem; SELECT cache_set('acct:probe', 'v', 0)};
is($standby->safe_psql('postgres', $set), 'f',
	'after a restart, a set from a snapshot that does not see an older transaction end is refused');
my $rr = CacheTest::session($standby, backend => 'shmem');
$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$rr->query_safe('SELECT count(*) FROM acct');    # its snapshot: before the end
$open->query_safe('COMMIT');
$open->quit;
sync_standby();
is($standby->safe_psql('postgres', $set), 't',
	'once that transaction\'s end is replayed, sets are stored again');
is(CacheTest::val($rr, q{SELECT cache_set('acct:probe2', 'v', 0)}), 'f',
	'but not from an older REPEATABLE READ snapshot that does not see it end');
$rr->query_safe('COMMIT');
$rr->quit;

# ---- 3: replay's WARNINGs are rate-limited ----

my $offset = -s $standby->logfile;
my $sql = "SET cache_ext.backend = redis;\n";
$sql .= "SELECT cache_invalidate_prefix('p$_:' || repeat('x', 900));\n" for 1 .. 300;
$primary->safe_psql('postgres', $sql);
sync_standby();
my $log = slurp_file($standby->logfile, $offset);
my $warnings = () = $log =~ /could not queue the Redis invalidations of replayed transaction/g;
note "$warnings queue-full warnings for 300 replayed records";
cmp_ok($warnings, '>=', 1, 'a standby whose queue is full says so');
cmp_ok($warnings, '<=', 3,
	'at most once per 10 s, not once per replayed record');

# the count of the others comes with the next one, or at the end of recovery
$standby->promote;
$log = slurp_file($standby->logfile, $offset);
like($log,
	qr/(\d+) more warnings (like this one )?about replayed WAL records were not logged/,
	'the count of the warnings not logged is logged');

$standby->stop;
$primary->stop;
done_testing();
