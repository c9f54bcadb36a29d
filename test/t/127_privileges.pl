# Who may read, write and empty the cache (issue 13), with four roles: the
# table's owner, the application role (granted the Redis store and
# cache_flush), an unprivileged role, and a role under row-level security.
# The Redis side is checked with redis-cli: the application's own keys are
# out of reach of a role that may not choose Redis, a wildcard pattern does
# not empty Redis, and the password is nowhere a non-superuser can look.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

require "$FindBin::Bin/100_redis_lib.pm";

my $redis = RedisServer->new('--requirepass', 's3cr3t-pw');
my $node = PostgreSQL::Test::Cluster->new('privileges');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
# PostgreSQL itself logs statements verbatim (the README says so): check
# what cache_ext logs, with statement logging as in production
log_statement = none
log_min_error_statement = panic
cache_ext.redis_url = 'redis://:s3cr3t-pw\@127.0.0.1:} . $redis->port . qq{/0'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION cache_ext;
	CREATE ROLE owner_r LOGIN;
	CREATE ROLE app LOGIN;
	CREATE ROLE nobody LOGIN;
	CREATE ROLE tenant LOGIN;
	CREATE TABLE items (id int PRIMARY KEY, tenant text, secret text);
	ALTER TABLE items OWNER TO owner_r;
	INSERT INTO items VALUES (1, 'tenant', 'a'), (2, 'other', 'b');
	GRANT SELECT ON items TO app, tenant;
	-- app may delete and create triggers: only cache_ext's rules refuse below
	GRANT DELETE, TRIGGER ON items TO app;
	ALTER TABLE items ENABLE ROW LEVEL SECURITY;
	CREATE POLICY mine ON items TO tenant USING (tenant = current_user);
	CREATE POLICY all_rows ON items TO app USING (true);
	GRANT SET ON PARAMETER cache_ext.backend TO app;
	GRANT EXECUTE ON FUNCTION cache_flush() TO app;
	ALTER ROLE app SET cache_ext.backend = 'redis';
});

sub as
{
	my ($role, $sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		on_error_stop => 1, extra_params => [ '-U', $role ]);
	return ($rc, $out, $err);
}

sub rcli { return $redis->cli(@_); }

# the application's own keys in Redis
rcli('SET', 'session:abc', 'token-of-alice');
rcli('SET', 'app:page', 'cached page');

# ---- choosing Redis is a privilege ----
my ($rc, $out, $err) = as('nobody', q{SET cache_ext.backend = 'redis'});
isnt($rc, 0, 'an unprivileged role cannot choose the Redis store');
like($err, qr/permission denied to set parameter "cache_ext.backend"/, 'with PostgreSQL\'s message');
($rc, $out, $err) = as('nobody', q{SELECT cache_get('session:abc') IS NULL});
is($out, 't', 'so it cannot read the application\'s Redis keys (its store is shared memory)');
($rc, $out, $err) = as('nobody', q{SELECT cache_set('session:abc', 'forged', 0)});
is(rcli('GET', 'session:abc'), 'token-of-alice', 'nor overwrite them');

($rc, $out, $err) = as('app', q{SELECT current_setting('cache_ext.backend'), cache_get('session:abc')});
is($out, 'redis|token-of-alice', 'the application role uses Redis (ALTER ROLE ... SET) and reads its keys');

# ---- emptying a namespace needs the flush privilege ----
($rc, $out, $err) = as('nobody', q{SELECT cache_invalidate_pattern('*')});
isnt($rc, 0, 'an unprivileged role cannot invalidate the pattern *');
like($err, qr/permission denied to invalidate a pattern that starts with a wildcard/, 'with a clear message');
($rc, $out, $err) = as('tenant', q{SELECT cache_set('t:1', 'x', 0); SELECT cache_invalidate_pattern('?:*')});
isnt($rc, 0, 'nor ?:* (any leading wildcard)');
($rc, $out, $err) = as('tenant', q{SELECT cache_get('t:1')});
is($out, 'x', 'so the shared-memory namespace keeps its keys');
is(rcli('DBSIZE'), '2', 'and Redis keeps every key');
($rc, $out, $err) = as('app', q{SELECT cache_invalidate_pattern('app:*')});
is($out, '1', 'a pattern with a literal start is allowed');
is(rcli('EXISTS', 'session:abc'), '1', 'and removes only what it matches');

# ---- cache_fetch does not leak rows ----
($rc, $out, $err) = as('owner_r', q{SELECT cache_fetch('items:all', 'SELECT id, secret FROM items ORDER BY id', 600)});
is($out, '[{"id": 1, "secret": "a"}, {"id": 2, "secret": "b"}]', 'the owner caches every row');
($rc, $out, $err) = as('nobody', q{SELECT cache_fetch('items:all', 'SELECT id, secret FROM items ORDER BY id', 600)});
isnt($rc, 0, 'a role without SELECT gets no rows from the cached result');
like($err, qr/permission denied for table items/, 'but the query\'s own permission error');
($rc, $out, $err) = as('tenant', q{SELECT cache_fetch('items:all', 'SELECT id, secret FROM items ORDER BY id', 600)});
is($out, '[{"id": 1, "secret": "a"}]', 'the role under RLS gets only its rows, not the owner\'s cached ones');
($rc, $out, $err) = as('owner_r', q{SELECT cache_fetch('items:all', 'SELECT id, secret FROM items ORDER BY id', 600)});
is($out, '[{"id": 1, "secret": "a"}, {"id": 2, "secret": "b"}]', 'and did not replace them');
($rc, $out, $err) = as('app', q{SELECT cache_fetch('items:x', 'DELETE FROM items RETURNING *')});
isnt($rc, 0, 'cache_fetch refuses DML');
is($node->safe_psql('postgres', 'SELECT count(*) FROM items'), '2', 'and no row was deleted');

# ---- write-through needs the owner ----
($rc, $out, $err) = as('app', q{SELECT cache_attach_write_through('items', 'items:{id}')});
isnt($rc, 0, 'a role that does not own the table cannot attach write-through');

# ---- the password ----
$node->safe_psql('postgres', q{ALTER ROLE app SET cache_ext.key_prefix = ''});
for my $role (qw(nobody app))
{
	($rc, $out, $err) = as($role, q{
		SELECT current_setting('cache_ext.redis_url');
		SELECT string_agg(coalesce(setting, '') || coalesce(reset_val, '') || coalesce(boot_val, ''), '') FROM pg_settings WHERE name = 'cache_ext.redis_url';
		SELECT string_agg(array_to_string(setconfig, ','), ',') FROM pg_db_role_setting;
	});
	unlike($out . $err, qr/s3cr3t-pw/, "$role sees no password in SHOW, pg_settings or pg_db_role_setting");
}
($rc, $out, $err) = $node->psql('postgres',
	q{ALTER ROLE app SET cache_ext.redis_url = 'redis://:other-pw@127.0.0.1:1/0'},
	stdout => \$out, stderr => \$err);
isnt($rc, 0, 'a password cannot be stored with ALTER ROLE ... SET');
unlike($err, qr/other-pw/, 'and the refusal does not quote it');
my $log = slurp_file($node->logfile);
unlike($log, qr/s3cr3t-pw|other-pw/, 'cache_ext never writes a password to the server log');

$node->stop;
done_testing();
