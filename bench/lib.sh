# shellcheck shell=bash
#
# bench/lib.sh: what the benchmark needs on top of test/lib.sh (which starts
# the throwaway PostgreSQL and Redis; see there).  Source test/lib.sh first.
#
#   bench_deps             test/lib.sh's packages + memcached, pgmemcache, python3
#   bench_start_memcached  a throwaway memcached on a free loopback port
#   bench_cleanup          stop memcached, then test/lib.sh's ce_cleanup
#   bench_pgbench          one pgbench run, its tps appended to the results
#   bench_record           append one figure to the results (TSV)
#   bench_cmd              remember an exact command for the results file

BENCH_DIR=$CE_ROOT/bench
BENCH_PACKAGES=(memcached postgresql-"$CE_PGVER"-pgmemcache python3)

MC_PORT=
MC_STARTED=0
BENCH_OUT=          # $CE_TMP/src/bench: the scripts, readable by postgres
BENCH_RAW=          # bench/out/<date-time>: results.tsv, commands, logs
BENCH_TSV=
BENCH_CMDS=

bench_deps() {
	ce_deps
	ce_install_missing "${BENCH_PACKAGES[@]}"
}

bench_start_memcached() {
	MC_PORT=$(ce_free_port "${BENCH_MC_PORT_BASE:-11311}")
	ce_log "starting memcached on 127.0.0.1:$MC_PORT"
	ce_as_pg /usr/bin/memcached -d -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 512 -c 256 \
		-P "$CE_TMP/memcached.pid"
	MC_STARTED=1
	local i
	for i in $(seq 1 50); do
		! ce_port_free "$MC_PORT" && return 0
		sleep 0.1
	done
	ce_die "memcached did not start"
}

bench_cleanup() {
	local rc=$?
	# run.sh runs under set -e: "(exit $rc)" below would end this trap
	# there, after a failure, with PostgreSQL and Redis still running
	set +e
	if [ "$MC_STARTED" = 1 ] && [ "${CE_KEEP:-0}" != 1 ]; then
		local pid
		pid=$(cat "$CE_TMP/memcached.pid" 2>/dev/null || true)
		[ -n "$pid" ] && ce_as_root kill "$pid" 2>/dev/null || true
		MC_STARTED=0
	fi
	# ce_cleanup returns $? as it found it
	(exit "$rc")
	ce_cleanup
}

bench_install_cleanup_trap() {
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# bench_record SECTION NAME CLIENTS REP VALUE UNIT [NOTE]
bench_record() {
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "${7:-}" >>"$BENCH_TSV"
}

# bench_cmd SECTION COMMAND...: the exact command, for the results file
bench_cmd() {
	local sec=$1
	shift
	printf '%s\t%s\n' "$sec" "$*" >>"$BENCH_CMDS"
}

# psql on the bench database, output unaligned without headers
bench_sql() {
	ce_psql -d bench -At "$@"
}

bench_pgoptions() {
	case $1 in
	redis) echo "-c cache_ext.backend=redis" ;;
	*) echo "" ;;
	esac
}

# bench_pgbench NAME STORE CLIENTS REP SECONDS FILE[@W]... : run pgbench,
# record tps (section $BENCH_SECTION, "pgbench" unless set) and print it.
# STORE is shmem or redis (which cache_ext store the session uses;
# irrelevant for the others).
bench_pgbench() {
	local name=$1 store=$2 clients=$3 rep=$4 secs=$5
	shift 5
	local args=(-n -M prepared -T "$secs" -c "$clients" -j "$clients" --no-vacuum)
	local f log tps lat
	for f in "$@"; do
		args+=(-f "$BENCH_OUT/sql/$f")
	done
	log=$BENCH_RAW/logs/${BENCH_SECTION:-pgbench}-$name-c$clients-r$rep.log
	[ "$rep" = 1 ] && [ "$clients" = 1 ] &&
		bench_cmd "pgbench $name" "PGOPTIONS='$(bench_pgoptions "$store")' pgbench -h 127.0.0.1 -p \$PGPORT -U postgres ${args[*]//$BENCH_OUT\//bench/} bench"
	if ! ce_as_pg env PGOPTIONS="$(bench_pgoptions "$store")" "$CE_PGBIN/pgbench" \
		-h 127.0.0.1 -p "$CE_PGPORT" -U postgres "${args[@]}" bench >"$log" 2>&1; then
		ce_warn "pgbench $name -c $clients failed:"
		tail -n 5 "$log" >&2 || true
		bench_record "${BENCH_SECTION:-pgbench}" "$name" "$clients" "$rep" "" tps "failed"
		return 0
	fi
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$log")
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$log")
	if grep -q 'number of failed transactions: [1-9]' "$log" ||
		grep -qi 'error' "$log"; then
		ce_warn "pgbench $name -c $clients reported errors"
		grep -i error "$log" | head -n 3 >&2
	fi
	bench_record "${BENCH_SECTION:-pgbench}" "$name" "$clients" "$rep" "$tps" tps "lat_ms=$lat"
	printf '  %-22s c=%s rep=%s  %10s tps\n' "$name" "$clients" "$rep" "$tps"
}
