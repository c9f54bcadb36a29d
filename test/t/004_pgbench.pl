# Several pgbench clients mixing cache_set, cache_get, cache_delete, prefix
# and pattern invalidation, and transactions that write and then commit or
# roll back: no error, no crash, and the counters add up afterwards.
#
# Each pgbench transaction (whatever its script) makes exactly one
# cache_get call, so hits + misses must equal the number of transactions.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('pgbench');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 16MB
max_connections = 20
});
$node->start;

sub q1 { return $node->safe_psql('postgres', $_[0]); }

q1('CREATE EXTENSION cache_ext');
q1('CREATE TABLE writes (id integer)');

my $dir = $node->basedir;
my %scripts = (
	# pgbench replaces :name everywhere, even inside quotes: keys are
	# built as 'k:' || :id.
	'set_get.sql' => q{
\set id random(1, 1000)
SELECT cache_set('k:' || :id, repeat('x', 200));
SELECT cache_get('k:' || :id);
},
	'invalidate.sql' => q{
\set p random(1, 9)
\set id random(1, 1000)
SELECT cache_invalidate_prefix('k:' || :p);
SELECT cache_get('k:' || :id);
},
	'delete.sql' => q{
\set id random(1, 1000)
SELECT cache_delete('k:' || :id);
SELECT cache_invalidate_pattern('k:' || :id || '?');
SELECT cache_get('k:' || :id);
},
	'write_txn.sql' => q{
\set id random(1, 1000)
\set commit random(0, 1)
BEGIN;
SELECT cache_set('t:' || :id, 'before-write');
INSERT INTO writes VALUES (:id);
SELECT cache_set('t:' || :id, 'after-write');
SELECT cache_get('k:' || :id);
\if :commit
COMMIT;
\else
ROLLBACK;
\endif
},
);
my %weights = ('set_get.sql' => 6, 'invalidate.sql' => 1, 'delete.sql' => 1, 'write_txn.sql' => 2);
my @order = sort keys %scripts;
my @fopts;
for my $f (@order)
{
	append_to_file("$dir/$f", $scripts{$f});
	push @fopts, '-f', "$dir/$f\@$weights{$f}";
}

q1('SELECT cache_reset_stats()');

my ($clients, $per_client) = (4, 5000);
my ($stdout, $stderr) = ('', '');
my @cmd = (
	'pgbench', '-n', '-c', $clients, '-j', 2, '-t', $per_client,
	'-h', $node->host, '-p', $node->port, @fopts, 'postgres');
note("running: @cmd");
my $ok = IPC::Run::run(\@cmd, '>', \$stdout, '2>', \$stderr);
note($stdout);
ok($ok, 'pgbench exits with status 0');
is($stderr, '', 'pgbench printed nothing on stderr (no error, no warning)');

my $total = $clients * $per_client;
like($stdout, qr/number of transactions actually processed: $total\/$total/,
	"all $total transactions processed");
my $failed = ($stdout =~ /number of failed transactions: (\d+)/) ? $1 : 0;
is($failed, 0, 'no failed transaction');

# transactions per script, in the order of the -f options
my @per_script = ($stdout =~ /^ - (\d+) transactions/mg);
is(scalar(@per_script), scalar(@order), 'a transaction count for each script');
my %n;
@n{@order} = @per_script;
note(join(', ', map { "$_: $n{$_}" } @order));

my ($hits, $misses, $sets, $deletes, $invalidations, $errors, $entries, $bytes_used, $bytes_max) =
  split /\|/, q1(q{SELECT hits, misses, sets, deletes, invalidations, errors, entries, bytes_used, bytes_max FROM cache_stats()});
note("hits=$hits misses=$misses sets=$sets deletes=$deletes invalidations=$invalidations errors=$errors entries=$entries bytes_used=$bytes_used bytes_max=$bytes_max");

is($hits + $misses, $total, 'hits + misses = the number of cache_get calls');
cmp_ok($hits, '>', 0, 'there were hits');
cmp_ok($misses, '>', 0, 'there were misses');
my $set_calls = $n{'set_get.sql'} + 2 * $n{'write_txn.sql'};
cmp_ok($sets, '>', 0, 'sets were counted');
cmp_ok($sets, '<=', $set_calls, "sets <= the number of cache_set calls ($set_calls)");
cmp_ok($invalidations, '>', 0, 'invalidations were counted');
is($errors, '0', 'no store error');
cmp_ok($bytes_used, '<=', $bytes_max, 'bytes_used <= bytes_max');
cmp_ok($entries, '<=', 2000, 'at most the 2000 distinct keys are stored');

# what is left is what was written
my ($k_present, $k_wrong) = split /\|/, q1(q{
	SELECT count(v), count(v) FILTER (WHERE v <> repeat('x', 200))
	FROM (SELECT cache_get('k:' || i) AS v FROM generate_series(1, 1000) i) s});
is($k_wrong, '0', "the $k_present k: keys left hold the value written");
my ($t_present) = q1(q{SELECT count(*) FROM generate_series(1, 1000) i WHERE cache_get('t:' || i) IS NOT NULL});
is($k_present + $t_present, $entries, 'entries = the keys that can be read');

# a value set after a write is there only if that transaction committed
is(q1(q{
	SELECT count(*) FROM generate_series(1, 1000) i
	WHERE cache_get('t:' || i) = 'after-write'
	  AND NOT EXISTS (SELECT 1 FROM writes w WHERE w.id = i)}),
	'0', 'no value set after a write survives a rollback');
is(q1(q{
	SELECT count(*) FROM generate_series(1, 1000) i
	WHERE cache_get('t:' || i) NOT IN ('before-write', 'after-write')}),
	'0', 't: keys hold one of the values written');

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC|was terminated/, 'no backend crashed');

$node->stop;
done_testing();
