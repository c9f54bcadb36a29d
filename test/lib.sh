# shellcheck shell=bash
#
# test/lib.sh: shell functions shared by test/deps.sh, test/run.sh and
# examples/demo.sh.  Source it; it defines functions and a few variables
# and runs nothing by itself.
#
# What it does for its callers:
#   ce_deps                install the Debian packages that are missing
#   ce_build_install       make && make install against PostgreSQL 15
#   ce_start_services      a throwaway cluster (as the postgres OS user, in a
#                          temp dir, preloading cache_ext, on a free loopback
#                          port) and, if asked, a throwaway Redis
#   ce_cleanup             stop both and remove the temp dir (install it as
#                          an EXIT trap: ce_install_cleanup_trap)
#
# Settings read from the environment (all optional):
#   CE_PGVER       PostgreSQL major version (15)
#   CE_KEEP=1      keep the temp dir (and stop nothing) for debugging
#   CE_PORT_BASE   first PostgreSQL port to try (54329)
#   CE_REDIS_PORT_BASE  first Redis port to try (63790)
#   CE_PGPREFIX    root of a relocated copy of the PostgreSQL packages
#                  (e.g. /tmp/pg1 holding /tmp/pg1/usr/lib/postgresql/15 and
#                  /tmp/pg1/usr/share/postgresql/15): build, install and test
#                  there, so that two checkouts can be tested side by side

# shellcheck disable=SC2034  # used by the scripts that source this file
CE_PGVER=${CE_PGVER:-15}
CE_PGPREFIX=${CE_PGPREFIX:-}
CE_PGBIN=$CE_PGPREFIX/usr/lib/postgresql/$CE_PGVER/bin
CE_PG_CONFIG=$CE_PGBIN/pg_config
CE_PGXS_DIR=$CE_PGPREFIX/usr/lib/postgresql/$CE_PGVER/lib/pgxs
CE_PG_REGRESS=$CE_PGXS_DIR/src/test/regress/pg_regress
CE_PG_ISOLATION_REGRESS=$CE_PGXS_DIR/src/test/isolation/pg_isolation_regress
CE_TAP_PERL_DIR=$CE_PGXS_DIR/src/test/perl
CE_REDIS_SERVER=/usr/bin/redis-server
CE_REDIS_CLI=/usr/bin/redis-cli
CE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Set by ce_start_services.
CE_TMP=
CE_LOGDIR=
CE_PGDATA=
CE_PGPORT=
CE_PGHOST=
CE_REDIS_PORT=
CE_PG_STARTED=0
CE_REDIS_STARTED=0

export DEBIAN_FRONTEND=noninteractive

ce_log() { printf '\n== %s\n' "$*"; }
ce_warn() { printf 'warning: %s\n' "$*" >&2; }
ce_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ce_is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as root: directly when root, else through sudo.
ce_as_root() {
	if ce_is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		ce_die "need root for: $* (run as root, or install sudo)"
	fi
}

# Run a command as the postgres OS user, from a directory it can read (the
# temp dir once there is one), with HOME there too.  Environment does not
# carry over through sudo: pass what the command needs with "env VAR=...".
ce_as_pg() {
	local dir=${CE_TMP:-/tmp}
	if ce_is_root; then
		(cd "$dir" && HOME=$dir runuser -u postgres -- "$@")
	else
		(cd "$dir" && sudo -u postgres env HOME="$dir" "$@")
	fi
}

# ---------------------------------------------------------------------------
# Packages

# Everything the build, the tests and the demo need (pgbench and
# isolationtester come with postgresql-15 / postgresql-client-15).
CE_PACKAGES=(
	make gcc libc6-dev perl
	postgresql-"$CE_PGVER" postgresql-client-"$CE_PGVER" postgresql-server-dev-"$CE_PGVER"
	libhiredis-dev redis-server redis-tools
	libipc-run-perl python3
)

ce_pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Install those of the given Debian packages that are missing.
ce_install_missing() {
	local missing=() p
	command -v dpkg-query >/dev/null 2>&1 ||
		ce_die "this needs a Debian-based system (dpkg/apt); install by hand: $*"
	for p in "$@"; do
		ce_pkg_installed "$p" || missing+=("$p")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		return 0
	fi
	ce_log "installing missing packages: ${missing[*]}"
	ce_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	ce_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" </dev/null
	for p in "${missing[@]}"; do
		ce_pkg_installed "$p" || ce_die "package $p did not install"
	done
}

ce_deps() {
	ce_install_missing "${CE_PACKAGES[@]}"
	getent passwd postgres >/dev/null || ce_die "no postgres OS user after installing postgresql-$CE_PGVER"
}

# ---------------------------------------------------------------------------
# Build

ce_build_install() {
	[ -x "$CE_PG_CONFIG" ] || ce_die "$CE_PG_CONFIG not found: run 'make deps'"
	ce_log "building cache_ext (PG_CONFIG=$CE_PG_CONFIG)"
	make -C "$CE_ROOT" -s -j"$(nproc 2>/dev/null || echo 2)" PG_CONFIG="$CE_PG_CONFIG"
	ce_log "installing cache_ext"
	ce_as_root make -C "$CE_ROOT" -s PG_CONFIG="$CE_PG_CONFIG" install
}

# ---------------------------------------------------------------------------
# Throwaway services

# True if nothing listens on 127.0.0.1:$1.
ce_port_free() {
	local port=$1
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		return 1
	fi
	if command -v ss >/dev/null 2>&1 &&
		ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
		return 1
	fi
	return 0
}

# Print the first free port from $1 upward (100 tries), skipping $2 if given.
ce_free_port() {
	local port=$1 skip=${2:-}
	local last=$((port + 100))
	while [ "$port" -lt "$last" ]; do
		if [ "$port" != "$skip" ] && ce_port_free "$port"; then
			echo "$port"
			return 0
		fi
		port=$((port + 1))
	done
	ce_die "no free port in $1..$last"
}

# Make the temp dir that holds the cluster, Redis's files and the copies of
# the tests; readable by the postgres user even when the repo is not.
# $CE_LOGDIR inside it stays the calling user's, for the logs this shell writes.
ce_make_tmp() {
	CE_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cache_ext.XXXXXX")
	chmod 755 "$CE_TMP"
	CE_LOGDIR=$CE_TMP/logs
	mkdir "$CE_LOGDIR"
	ce_as_root chown postgres: "$CE_TMP"
}

# Copy paths of the repo (relative to it) into $CE_TMP/src, owned by postgres.
ce_copy_to_tmp() {
	local p
	ce_as_root mkdir -p "$CE_TMP/src"
	for p in "$@"; do
		[ -e "$CE_ROOT/$p" ] || continue
		ce_as_root mkdir -p "$CE_TMP/src/$(dirname "$p")"
		ce_as_root cp -a "$CE_ROOT/$p" "$CE_TMP/src/$p"
	done
	ce_as_root chown -R postgres: "$CE_TMP/src"
}

# ce_start_services [--redis] [--conf 'line'] ...
# Sets CE_TMP CE_PGDATA CE_PGHOST CE_PGPORT (and CE_REDIS_PORT with --redis).
ce_start_services() {
	local with_redis=0 extra_conf=()
	while [ $# -gt 0 ]; do
		case $1 in
		--redis) with_redis=1 ;;
		--conf) extra_conf+=("$2"); shift ;;
		*) ce_die "ce_start_services: unknown argument $1" ;;
		esac
		shift
	done
	getent passwd postgres >/dev/null || ce_die "no postgres OS user: run 'make deps'"
	[ -x "$CE_PGBIN/initdb" ] || ce_die "$CE_PGBIN/initdb not found: run 'make deps'"

	[ -n "$CE_TMP" ] || ce_make_tmp
	CE_PGDATA=$CE_TMP/data
	CE_PGHOST=$CE_TMP

	if [ "$with_redis" = 1 ]; then
		CE_REDIS_PORT=$(ce_free_port "${CE_REDIS_PORT_BASE:-63790}")
		ce_log "starting redis-server on 127.0.0.1:$CE_REDIS_PORT"
		ce_as_pg "$CE_REDIS_SERVER" --port "$CE_REDIS_PORT" --bind 127.0.0.1 \
			--save '' --appendonly no --daemonize yes \
			--unixsocket "$CE_TMP/redis.sock" --unixsocketperm 777 \
			--dir "$CE_TMP" --pidfile "$CE_TMP/redis.pid" \
			--logfile "$CE_TMP/redis.log"
		CE_REDIS_STARTED=1
		local i
		for i in $(seq 1 100); do
			if "$CE_REDIS_CLI" -h 127.0.0.1 -p "$CE_REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
				break
			fi
			[ "$i" -lt 100 ] || { ce_as_root cat "$CE_TMP/redis.log" >&2 || true; ce_die "redis-server did not start"; }
			sleep 0.1
		done
	fi

	CE_PGPORT=$(ce_free_port "${CE_PORT_BASE:-54329}")
	ce_log "creating a throwaway cluster in $CE_PGDATA (port $CE_PGPORT)"
	ce_as_pg "$CE_PGBIN/initdb" -D "$CE_PGDATA" -U postgres -A trust \
		-E UTF8 --locale=C.UTF-8 --no-sync >"$CE_LOGDIR/initdb.log" 2>&1 ||
		{ cat "$CE_LOGDIR/initdb.log" >&2; ce_die "initdb failed"; }
	{
		echo "# added by cache_ext's test/lib.sh"
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $CE_PGPORT"
		echo "unix_socket_directories = '$CE_TMP'"
		echo "shared_preload_libraries = 'cache_ext'"
		echo "max_connections = 50"
		echo "max_prepared_transactions = 10"
		echo "fsync = off"
		echo "synchronous_commit = off"
		echo "full_page_writes = off"
		echo "lc_messages = 'C'"
		if [ "$with_redis" = 1 ]; then
			echo "cache_ext.redis_url = 'redis://127.0.0.1:$CE_REDIS_PORT/0'"
		fi
		local l
		for l in "${extra_conf[@]}"; do
			echo "$l"
		done
	} | ce_as_pg tee -a "$CE_PGDATA/postgresql.conf" >/dev/null
	if ! ce_as_pg "$CE_PGBIN/pg_ctl" -D "$CE_PGDATA" -l "$CE_TMP/postgres.log" \
		-w -t 60 start >/dev/null; then
		ce_as_root tail -n 40 "$CE_TMP/postgres.log" >&2 || true
		ce_die "the throwaway PostgreSQL did not start"
	fi
	CE_PG_STARTED=1
}

# psql on the throwaway cluster as postgres: ce_psql [psql args...]
ce_psql() {
	ce_as_pg env PGOPTIONS="${PGOPTIONS:-}" "$CE_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 \
		-h "$CE_PGHOST" -p "$CE_PGPORT" -U postgres "$@"
}

ce_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ "${CE_KEEP:-0}" = 1 ] && [ -n "$CE_TMP" ]; then
		echo "CE_KEEP=1: leaving $CE_TMP (PostgreSQL on port $CE_PGPORT, Redis on ${CE_REDIS_PORT:-none}) running" >&2
		return "$rc"
	fi
	if [ "$CE_PG_STARTED" = 1 ]; then
		ce_as_pg "$CE_PGBIN/pg_ctl" -D "$CE_PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
		CE_PG_STARTED=0
	fi
	if [ "$CE_REDIS_STARTED" = 1 ]; then
		"$CE_REDIS_CLI" -h 127.0.0.1 -p "$CE_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
		if [ -s "$CE_TMP/redis.pid" ]; then
			local pid
			pid=$(ce_as_root cat "$CE_TMP/redis.pid" 2>/dev/null || true)
			if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
				ce_as_root kill "$pid" 2>/dev/null || true
			fi
		fi
		CE_REDIS_STARTED=0
	fi
	if [ -n "$CE_TMP" ] && [ -d "$CE_TMP" ]; then
		ce_as_root rm -rf "$CE_TMP"
	fi
	CE_TMP=
	return "$rc"
}

ce_install_cleanup_trap() {
	trap ce_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}
