# Shared by the test/t/100_redis_*.pl TAP tests: a throwaway redis-server on
# a free loopback port, in a temp dir, started in the foreground so that the
# test can stop, kill, pause (SIGSTOP) and restart it; and a cluster that
# preloads cache_ext and uses that Redis.
#
#   require "$FindBin::Bin/100_redis_lib.pm";
#   my $redis = RedisServer->new('--requirepass', 'pw');   # extra server args
#   $redis->cli('GET', 'k');
#   my $node = RedisServer::cache_node('name', $redis);
#   my ($rc, $out, $err, $secs) = RedisServer::sql($node, 'SELECT 1');
#
# Every server started is killed when the test ends, whatever happens.
package RedisServer;

use strict;
use warnings;

use IPC::Run;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time usleep);

my @servers;

sub new
{
	my ($class, @args) = @_;
	my $self = bless {
		port => PostgreSQL::Test::Cluster::get_free_port(),
		dir => PostgreSQL::Test::Utils::tempdir('redis'),
		args => [@args],
		password => undef,
	}, $class;
	for (my $i = 0; $i < @args; $i++)
	{
		$self->{password} = $args[ $i + 1 ] if $args[$i] eq '--requirepass';
	}
	push @servers, $self;
	$self->start;
	return $self;
}

sub port { return $_[0]->{port}; }
sub dir { return $_[0]->{dir}; }
sub pid { return $_[0]->{pid}; }

sub start
{
	my ($self) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDOUT, '>>', "$self->{dir}/redis.log") or POSIX::_exit(126);
		open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
		exec($ENV{REDIS_SERVER} || 'redis-server',
			'--port', $self->{port}, '--bind', '127.0.0.1',
			'--save', '', '--appendonly', 'no', '--daemonize', 'no',
			'--dir', $self->{dir}, @{ $self->{args} });
		POSIX::_exit(127);
	}
	$self->{pid} = $pid;
	for (1 .. 100)
	{
		return if ($self->cli('PING') // '') eq 'PONG';
		usleep(100_000);
	}
	die "redis-server on port $self->{port} did not start; see $self->{dir}/redis.log";
}

# SIGTERM (a clean shutdown) and wait for the process to end.
sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'CONT', $self->{pid};
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	$self->{pid} = undef;
}

sub pause { kill 'STOP', $_[0]->{pid}; }
sub resume { kill 'CONT', $_[0]->{pid}; }

# redis-cli against this server, raw output, trailing newline removed; undef
# if it could not run.
sub cli
{
	my ($self, @cmd) = @_;
	my ($out, $err) = ('', '');
	my @auth = defined $self->{password} ? ('-a', $self->{password}) : ();
	my $ok = eval {
		IPC::Run::run(
			[
				$ENV{REDIS_CLI} || 'redis-cli', '-h', '127.0.0.1',
				'-p', $self->{port}, '--no-auth-warning', @auth, '--raw', @cmd
			],
			'>', \$out, '2>', \$err, IPC::Run::timeout(10));
		1;
	};
	return undef unless $ok;
	$out =~ s/\n\z//;
	return $out;
}

# A cluster that preloads cache_ext, uses this Redis and the Redis store by
# default, with the extension created in database postgres.
sub cache_node
{
	my ($name, $redis, $url, $extra_conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$url //= 'redis://127.0.0.1:' . $redis->port . '/0';
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
cache_ext.backend = redis
cache_ext.redis_url = '$url'
cache_ext.redis_command_timeout = 500
cache_ext.redis_connect_timeout = 1000
} . ($extra_conf // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION cache_ext');
	return $node;
}

# Runs SQL in a new session: (exit code, stdout, stderr, seconds taken).
sub sql
{
	my ($node, $sql, %opts) = @_;
	my ($out, $err) = ('', '');
	my $start = time();
	my $rc = $node->psql($opts{db} // 'postgres', $sql,
		stdout => \$out, stderr => \$err, on_error_stop => 1,
		extra_params => $opts{extra_params} // []);
	return ($rc, $out, $err, time() - $start);
}

END
{
	local $?;
	for my $s (@servers)
	{
		next unless $s->{pid};
		kill 'CONT', $s->{pid};
		kill 'KILL', $s->{pid};
		waitpid($s->{pid}, 0);
	}
}

1;
