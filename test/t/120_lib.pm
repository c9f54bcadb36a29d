# Shared by the test/t/12x_*.pl TAP tests (issue 12: which stores a write
# invalidates, invalidations Redis could not take, commit-time work, leases,
# bulk work).  Builds on 100_redis_lib.pm (RedisServer).
#
#   require "$FindBin::Bin/120_lib.pm";
#   my $node = CacheTest::users_node('name', $redis);   # users table attached
#   my $s = CacheTest::session($node, backend => 'shmem');
#   my ($out, $err) = CacheTest::run($s, 'SELECT 1');
#   CacheTest::start($s, 'COMMIT');  ...  CacheTest::wait_done($s, 30);
#   CacheTest::queued($node)      # cache_stats().invalidations_queued (redis row)
#   CacheTest::poll(10, sub { ... })
#   my $fake = CacheTest::fake_redis('cursor1');   # a RESP server, ->{port}
package CacheTest;

use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use POSIX ();
use Test::More;
use Time::HiRes qw(time usleep);

require "$FindBin::Bin/100_redis_lib.pm";

# A cluster that preloads cache_ext with this Redis configured, the Redis
# store as its default (as RedisServer::cache_node), max_prepared_transactions
# on, and the table of the issue:
#   users(user_id int primary key, name text) with rows 1..$rows,
#   cache_attach('users', 'users:all', 'users:by_id:{user_id}')
sub users_node
{
	my ($name, $redis, %opts) = @_;
	my $node = RedisServer::cache_node($name, $redis, $opts{url},
		"max_prepared_transactions = 5\n" . ($opts{conf} // ''));
	my $rows = $opts{rows} // 3;
	$node->safe_psql('postgres', qq{
CREATE TABLE users (user_id int PRIMARY KEY, name text);
INSERT INTO users SELECT g, 'user' || g FROM generate_series(1, $rows) g;
SELECT cache_attach('users', 'users:all', 'users:by_id:{user_id}');
});
	return $node;
}

# A background psql session that does not stop on errors, on the store given
# (backend => 'shmem' | 'redis'), with more settings in set => [...].  Each
# query may take up to $opts{timeout} seconds (180 by default).
sub session
{
	my ($node, %opts) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0,
		timeout => $opts{timeout} // 180);
	$s->set_query_timer_restart;
	$s->query_safe("SET cache_ext.backend = $opts{backend}") if $opts{backend};
	$s->query_safe($_) for @{ $opts{set} // [] };
	return $s;
}

# Runs SQL in a session: (stdout, stderr) of that statement alone.
sub run
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	my ($out) = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

# Runs SQL in a session: its stdout, whatever it says on stderr.
sub val { return (run(@_))[0]; }

# Sends SQL without waiting for it; wait_done() collects it.
my $tagno = 0;

sub start
{
	my ($s, $sql) = @_;
	my $tag = 'cachetest-done-' . ++$tagno;
	$s->{stdout} = '';
	$s->{stderr} = '';
	$s->{pending_tag} = $tag;
	$s->{started_at} = time();
	$s->{timeout}->start() if defined $s->{query_timer_restart};
	$s->{stdin} .= "$sql\n;\n\\echo '$tag'\n\\warn '$tag'\n";
	$s->{run}->pump_nb;
	return $tag;
}

# Has the SQL sent by start() finished?
sub done
{
	my ($s) = @_;
	my $tag = $s->{pending_tag};
	$s->{run}->pump_nb;
	return $s->{stdout} =~ /\Q$tag\E\n/ && $s->{stderr} =~ /\Q$tag\E\n/;
}

# Waits up to $secs for the SQL sent by start(): (finished, stdout, stderr,
# seconds since it was sent).  When it has not finished, the caller must
# make it finish (cancel it) before using the session again.
sub wait_done
{
	my ($s, $secs) = @_;
	my $deadline = time() + $secs;
	my $fin;
	until (($fin = done($s)) || time() > $deadline)
	{
		usleep(20_000);
	}
	my $elapsed = time() - $s->{started_at};
	return (0, undef, undef, $elapsed) unless $fin;
	my $tag = $s->{pending_tag};
	my ($out, $err) = ($s->{stdout}, $s->{stderr});
	$out =~ s/\n?\Q$tag\E\n//;
	$err =~ s/\Q$tag\E\n//;
	$s->{stdout} = '';
	$s->{stderr} = '';
	return (1, $out, $err, $elapsed);
}

# A session's backend pid.
sub pid { return $_[0]->query_safe('SELECT pg_backend_pid()'); }

# Polls $sub every 100 ms for up to $secs seconds; true once it is true.
sub poll
{
	my ($secs, $sub) = @_;
	my $deadline = time() + $secs;
	while (1)
	{
		return 1 if $sub->();
		return 0 if time() > $deadline;
		usleep(100_000);
	}
}

# cache_stats().invalidations_queued of the Redis row (a new session with
# cache_ext.backend = redis), or undef (and a note) if that fails.
sub queued
{
	my ($node) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres',
		q{SET cache_ext.backend = redis; SET client_min_messages = error;
		  SELECT invalidations_queued FROM cache_stats()},
		stdout => \$out, stderr => \$err, on_error_stop => 1);
	if ($out !~ /^\d+$/)
	{
		note "cache_stats().invalidations_queued unavailable: $err";
		return undef;
	}
	return $out;
}

# A single SQL statement in a new session: (exit code, stdout, stderr, secs).
sub sql { return RedisServer::sql(@_); }

# ---- a fake Redis server speaking RESP (python3) ----

my @fakes;

# mode: what SCAN answers, forever: 'cursor1' (cursor "1", no keys) or
# 'abc' (cursor "abc", no keys).  Everything else gets a harmless answer.
sub fake_redis
{
	my ($mode) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		exec('python3', "$FindBin::Bin/120_fake_redis.py", $port, $mode);
		POSIX::_exit(127);
	}
	my $self = { port => $port, pid => $pid };
	push @fakes, $self;
	for (1 .. 100)
	{
		if (IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port))
		{
			return $self;
		}
		usleep(100_000);
	}
	die "the fake Redis on port $port did not start";
}

use IO::Socket::INET;

END
{
	local $?;
	for my $f (@fakes)
	{
		kill 'KILL', $f->{pid};
		waitpid($f->{pid}, 0);
	}
}

1;
