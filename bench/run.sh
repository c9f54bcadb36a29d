#!/usr/bin/env bash
#
# bench/run.sh ("make bench"): cache_ext against what users would pick
# instead, side by side in one run, on one throwaway PostgreSQL 15 cluster,
# Redis and memcached on loopback ports.  See bench/README.md.
#
#   1. install missing packages, build and install the extension
#   2. start memcached, Redis, PostgreSQL (cache_ext + pgmemcache preloaded)
#   3. load the data (bench/sql/setup.sql), then the sections:
#      pgbench workloads, redis-benchmark, the 110 kB page again with glibc
#      malloc tuned, per-call cost inside one query,
#      memory per entry, prefix invalidation (+ stall of a concurrent
#      reader), Zipf stream (hit ratio vs an exact LRU, throughput),
#      the write path (pgbench tpcb-like with and without cache_attach)
#   4. write bench/results/YYYY-MM-DD.md (bench/report.py)
#
# Environment (optional):
#   BENCH_QUICK=1        ~2-minute smoke run (1 s runs, one repetition,
#                        fewer rows); writes bench/out/quick-YYYY-MM-DD.md
#   BENCH_SECS=4         seconds per pgbench run
#   BENCH_REPS=3         repetitions of every pgbench run (the median is reported)
#   BENCH_CLIENTS="1 2"  client counts
#   BENCH_SECTIONS="pgbench malloc inquery memory invalidate zipf writes redisscale nearcache wal"
#                        (wal: bench/wal.sh, cache_ext.wal_invalidations off/on)
#   BENCH_TPCB_SCALE=10  pgbench -i scale of the writes section
#   BENCH_TPCB_MODE=simple  its pgbench query mode (simple, extended, prepared)
#   BENCH_TPCB_VARIANTS="none shmem redis"  its variants (none must be one)
#   BENCH_TPCB_SHMEM_KEYS=10000  unrelated keys it puts in the shared-memory store
#   BENCH_TPCB_REPS      its repetitions at the first client count (2 x BENCH_REPS)
#   BENCH_SKIP_BUILD=1   use the cache_ext already installed
#   BENCH_RESULTS=path   where to write the markdown
#   CE_KEEP=1            leave the services running (see test/lib.sh)
set -euo pipefail

# shellcheck source=test/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"
# shellcheck source=bench/lib.sh
. "$CE_ROOT/bench/lib.sh"

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	SECS=${BENCH_SECS:-1}
	REPS=${BENCH_REPS:-1}
	INQ_REPS=3
	INQ_SCALE=5          # row counts divided by this
	INV_CASES="10000:100000 10000:1000000"
	ZIPF_LEN=300000
else
	SECS=${BENCH_SECS:-4}
	REPS=${BENCH_REPS:-3}
	INQ_REPS=5
	INQ_SCALE=1
	INV_CASES="10000:100000 10000:1000000 100000:1000000"
	ZIPF_LEN=1000000
fi
CLIENTS=${BENCH_CLIENTS:-1 2}
ALL_SECTIONS="pgbench malloc inquery memory invalidate zipf writes redisscale nearcache wal"
SECTIONS=${BENCH_SECTIONS:-$ALL_SECTIONS}
ZIPF_N=${BENCH_ZIPF_N:-300000}
ZIPF_S=${BENCH_ZIPF_S:-1.1}
DATE=$(date +%F)
if [ "$QUICK" = 1 ]; then
	RESULTS=${BENCH_RESULTS:-$CE_ROOT/bench/out/quick-$DATE.md}
else
	RESULTS=${BENCH_RESULTS:-$CE_ROOT/bench/results/$DATE.md}
fi

# raw logs and the figures, kept for inspection (bench/out is not committed)
BENCH_RAW=$CE_ROOT/bench/out/$(date +%F-%H%M%S)
mkdir -p "$BENCH_RAW/logs"
BENCH_TSV=$BENCH_RAW/results.tsv
BENCH_CMDS=$BENCH_RAW/commands.tsv
BENCH_META=$BENCH_RAW/meta.tsv
: >"$BENCH_TSV"
: >"$BENCH_CMDS"
: >"$BENCH_META"

# restart PostgreSQL with another cache_ext.shmem_size (the store starts empty)
pg_restart_shmem() {
	echo "cache_ext.shmem_size = '$1'" | ce_as_pg tee -a "$CE_PGDATA/postgresql.conf" >/dev/null
	ce_as_pg "$CE_PGBIN/pg_ctl" -D "$CE_PGDATA" -l "$CE_TMP/postgres.log" -w -t 60 restart >/dev/null
}

meta() { printf '%s\t%s\n' "$1" "$2" >>"$BENCH_META"; }
has_section() { [[ " $SECTIONS " == *" $1 "* ]]; }

busy=$(pgrep -c -f pg_regress || true)
if [ "${busy:-0}" -gt 0 ]; then
	ce_warn "$busy pg_regress process(es) running: the figures will be noisy"
fi
meta "load at start" "$(cut -d' ' -f1-3 /proc/loadavg) (pg_regress processes: ${busy:-0})"

# ---------------------------------------------------------------------------
# 1. packages, build, install

bench_deps
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
	ce_build_install
fi

# ---------------------------------------------------------------------------
# 2. services

bench_install_cleanup_trap
ce_make_tmp
bench_start_memcached
ce_start_services --redis \
	--conf "shared_preload_libraries = 'cache_ext,pgmemcache'" \
	--conf "pgmemcache.default_servers = '127.0.0.1:$MC_PORT'" \
	--conf "shared_buffers = '256MB'" \
	--conf "max_wal_size = '4GB'" \
	--conf "jit = off"
RP=$CE_REDIS_PORT
PGCONF_LINES="shared_preload_libraries = 'cache_ext,pgmemcache'; pgmemcache.default_servers = '127.0.0.1:<memcached port>'; cache_ext.shmem_size: default (64MB), 320MB for invalidation among 1M keys, 8MB for the Zipf section; shared_buffers = '256MB'; max_wal_size = '4GB'; jit = off; fsync/synchronous_commit/full_page_writes = off"

ce_copy_to_tmp bench/sql
BENCH_OUT=$CE_TMP/src/bench
TOOLS="python3 $CE_ROOT/bench/tools.py"

ce_psql -d postgres -c "CREATE DATABASE bench"
ce_log "loading the data (bench/sql/setup.sql)"
bench_sql -f "$BENCH_OUT/sql/setup.sql" >"$BENCH_RAW/logs/setup.log" 2>&1 ||
	{ cat "$BENCH_RAW/logs/setup.log" >&2; ce_die "setup failed"; }
bench_cmd setup "psql -d bench -f bench/sql/setup.sql"

# Does the Redis store work?  (It is being written while this is.)
REDIS_STORE=0
if bench_sql -c "SET cache_ext.backend = redis" -c "SET cache_ext.on_error = error" \
	-c "SELECT cache_set('bench/probe', 'x', 60)" 2>"$BENCH_RAW/logs/redis-store.log" | grep -qx t; then
	REDIS_STORE=1
	bench_sql -c "SET cache_ext.backend = redis" \
		-c "SELECT count(cache_set('k:' || i, bench_v(), 3600)) FROM generate_series(0, 9999) i" \
		-c "SELECT cache_set('page/users/1', bench_list_users(), 3600)" >/dev/null
else
	ce_warn "the Redis store does not work yet ($(head -c 300 "$BENCH_RAW/logs/redis-store.log")): its rows are marked pending"
fi
meta "redis store" "$([ $REDIS_STORE = 1 ] && echo works || echo "pending: $(tr '\n' ' ' <"$BENCH_RAW/logs/redis-store.log" | head -c 200)")"

# sanity: every get workload hits
for q in "SELECT count(cache_get('k:' || i)) FROM generate_series(0, 9999) i" \
	"SELECT count(memcache_get('k:' || i)) FROM generate_series(0, 9999) i" \
	"SELECT count(*) FROM ucache WHERE key LIKE 'k:%' AND expires_at > now()"; do
	n=$(bench_sql -c "$q")
	[ "$n" = 10000 ] || ce_warn "expected 10000 hits, got $n: $q"
done
PAGE_BYTES=$(bench_sql -c "SELECT octet_length(cache_get('page/users/1'))")
meta "list users page" "$PAGE_BYTES bytes (json_agg of the 1000 newest of 100k users)"

# machine and versions
meta "date" "$(date -u '+%F %H:%M UTC')"
meta "nproc" "$(nproc)"
meta "cpu" "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
meta "kernel" "$(uname -r)"
meta "postgresql" "$(bench_sql -c 'SHOW server_version')"
meta "cache_ext" "$(git -C "$CE_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$CE_ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src/')"
meta "pgmemcache" "$(bench_sql -c "SELECT extversion FROM pg_extension WHERE extname = 'pgmemcache'") ($(dpkg-query -W -f='${Version}' postgresql-"$CE_PGVER"-pgmemcache))"
meta "redis" "$("$CE_REDIS_SERVER" --version | sed 's/ sha=.*//')"
meta "memcached" "$(/usr/bin/memcached -V 2>/dev/null || /usr/bin/memcached -h | head -n 1)"
meta "pgbench" "-M prepared -T $SECS, clients: $CLIENTS, $REPS run(s) each, interleaved"
meta "postgresql.conf" "$PGCONF_LINES"
meta "quick" "$QUICK"
meta "sections" "$SECTIONS"
meta "all sections" "$ALL_SECTIONS"

# ---------------------------------------------------------------------------
# 3a. pgbench workloads: name|store|script[@weight] ...

WORKLOADS=(
	"select1|shmem|select1.sql"
	"pk|shmem|pk.sql"
	"list_nocache|shmem|list_nocache.sql"
	"floor_list|shmem|floor_list.sql"
	"u_get|shmem|u_get.sql"
	"u_set|shmem|u_set.sql"
	"u_mix|shmem|u_get.sql@9 u_set.sql@1"
	"u_list|shmem|u_list.sql"
	"mc_get|shmem|mc_get.sql"
	"mc_set|shmem|mc_set.sql"
	"mc_mix|shmem|mc_get.sql@9 mc_set.sql@1"
	"mc_list|shmem|mc_list.sql"
	"ce_get|shmem|ce_get.sql"
	"ce_set|shmem|ce_set.sql"
	"ce_mix|shmem|ce_get.sql@9 ce_set.sql@1"
	"ce_list|shmem|ce_list.sql"
	"ce_fetch|shmem|ce_fetch.sql"
)
if [ "$REDIS_STORE" = 1 ]; then
	WORKLOADS+=(
		"cer_get|redis|ce_get.sql"
		"cer_set|redis|ce_set.sql"
		"cer_mix|redis|ce_get.sql@9 ce_set.sql@1"
		"cer_list|redis|ce_list.sql"
	)
fi

if has_section pgbench; then
	ce_log "pgbench workloads (${#WORKLOADS[@]} x clients $CLIENTS x $REPS, $SECS s each)"
	for rep in $(seq 1 "$REPS"); do
		for c in $CLIENTS; do
			for w in "${WORKLOADS[@]}"; do
				IFS='|' read -r name store files <<<"$w"
				# shellcheck disable=SC2086
				bench_pgbench "$name" "$store" "$c" "$rep" "$SECS" $files
			done
			# Redis itself, same value size and client count
			n=$((SECS * 40000))
			bench_cmd "redis-benchmark" "redis-benchmark -h 127.0.0.1 -p \$REDIS_PORT -t set,get -d 200 -r 10000 -c $c -n $n --csv"
			"$CE_REDIS_CLI" -p "$RP" flushdb >/dev/null
			/usr/bin/redis-benchmark -h 127.0.0.1 -p "$RP" -t set,get -d 200 -r 10000 \
				-c "$c" -n "$n" --csv >"$BENCH_RAW/logs/redis-benchmark-c$c-r$rep.csv" 2>&1
			for t in SET GET; do
				rps=$(awk -F'"' -v t="$t" '$2 == t { print $4 }' "$BENCH_RAW/logs/redis-benchmark-c$c-r$rep.csv")
				bench_record pgbench "rb_$(tr 'A-Z' 'a-z' <<<"$t")" "$c" "$rep" "$rps" rps
				printf '  %-22s c=%s rep=%s  %10s rps\n' "redis-benchmark $t" "$c" "$rep" "$rps"
			done
			# the Redis store's workloads need their keys back
			if [ "$REDIS_STORE" = 1 ]; then
				"$CE_REDIS_CLI" -p "$RP" flushdb >/dev/null
				bench_sql -c "SET cache_ext.backend = redis" \
					-c "SELECT count(cache_set('k:' || i, bench_v(), 3600)) FROM generate_series(0, 9999) i" \
					-c "SELECT cache_set('page/users/1', bench_list_users(), 3600)" >/dev/null
			fi
		done
	done
fi

# ---------------------------------------------------------------------------
# 3a'. the 110 kB page again, with glibc's malloc told to keep freed memory.
# A backend that returns a 110 kB value frees two or three such blocks per
# statement; with glibc's initial thresholds they leave the top of the heap,
# which is handed back to the kernel and faulted in again on the next call
# (perf: page faults dominate the UNLOGGED table's page).  cache_get raises
# glibc's thresholds in its own backend (keep_heap_for() in src/cache.c);
# this section gives every backend the setting README "Large values"
# describes, on the same workloads and data, then goes back to the defaults.

MALLOC_TUNED=glibc.malloc.trim_threshold=8388608:glibc.malloc.mmap_threshold=4194304
LARGE_WORKLOADS=(
	"floor_list|shmem|floor_list.sql"
	"u_list|shmem|u_list.sql"
	"mc_list|shmem|mc_list.sql"
	"ce_list|shmem|ce_list.sql"
	"ce_fetch|shmem|ce_fetch.sql"
)
[ "$REDIS_STORE" = 1 ] && LARGE_WORKLOADS+=("cer_list|redis|ce_list.sql")

# pg_restart_env [VAR=value]: restart PostgreSQL (with that environment) and
# put back the values the workloads read from the shmem store
pg_restart_env() {
	ce_as_pg env -u GLIBC_TUNABLES "$@" "$CE_PGBIN/pg_ctl" -D "$CE_PGDATA" -l "$CE_TMP/postgres.log" -w -t 60 restart >/dev/null
	bench_sql -f "$BENCH_OUT/sql/fill_shmem.sql" >/dev/null
}

if has_section malloc; then
	ce_log "the 110 kB page with GLIBC_TUNABLES=$MALLOC_TUNED"
	meta "malloc tuned" "GLIBC_TUNABLES=$MALLOC_TUNED"
	bench_cmd malloc "GLIBC_TUNABLES=$MALLOC_TUNED pg_ctl restart; then the same pgbench commands"
	pg_restart_env GLIBC_TUNABLES="$MALLOC_TUNED"
	for rep in $(seq 1 "$REPS"); do
		for c in $CLIENTS; do
			for w in "${LARGE_WORKLOADS[@]}"; do
				IFS='|' read -r name store files <<<"$w"
				# shellcheck disable=SC2086
				BENCH_SECTION=malloc bench_pgbench "$name" "$store" "$c" "$rep" "$SECS" $files
			done
		done
	done
	pg_restart_env
fi

# ---------------------------------------------------------------------------
# 3b. per-call cost inside one query

if has_section inquery; then
	ce_log "per-call cost inside one query ($INQ_REPS rounds)"
	M=$((1000000 / INQ_SCALE))
	INQ=(
		"empty|$M|SELECT count(i) FROM generate_series(1, $M) i"
		"builtin|$M|SELECT count(length('k:' || (i % 10000))) FROM generate_series(1, $M) i"
		"ce_get|$M|SELECT count(cache_get('k:' || (i % 10000))) FROM generate_series(1, $M) i"
		"u_get|$((M / 10))|SELECT count((SELECT value FROM ucache WHERE key = 'k:' || (i % 10000) AND expires_at > now())) FROM generate_series(1, $((M / 10))) i"
		"mc_get|$((M / 100))|SELECT count(memcache_get('k:' || (i % 10000))) FROM generate_series(1, $((M / 100))) i"
		# cache_fetch hits (100 keys, filled by the first calls): a query that
		# reads nothing, and one that reads a table (its privileges checked)
		"ce_fetch|$((M / 10))|SELECT count(cache_fetch('f:' || (i % 100), 'SELECT 1 AS a')) FROM generate_series(1, $((M / 10))) i"
		"ce_fetch_t|$((M / 10))|SELECT count(cache_fetch('ft:' || (i % 100), 'SELECT key FROM ucache WHERE key = ''k:1''')) FROM generate_series(1, $((M / 10))) i"
		# the 110 kB page: a copy of an in-memory value per row (the floor),
		# then fetched from cache_ext and from the UNLOGGED table per row
		"page_floor|$((M / 500))|WITH p AS MATERIALIZED (SELECT cache_get('page/users/1') AS v) SELECT sum(octet_length(v || '')) FROM generate_series(1, $((M / 500))) i, p"
		"ce_page|$((M / 500))|SELECT sum(octet_length(cache_get('page/users/' || (1 + i % 1)) || '')) FROM generate_series(1, $((M / 500))) i"
		"u_page|$((M / 500))|SELECT sum(octet_length((SELECT value FROM ucache WHERE key = 'page/users/' || (1 + i % 1) AND expires_at > now()) || '')) FROM generate_series(1, $((M / 500))) i"
	)
	[ "$REDIS_STORE" = 1 ] &&
		INQ+=("cer_get|$((M / 100))|SELECT count(cache_get('k:' || (i % 10000))) FROM generate_series(1, $((M / 100))) i")
	script=$CE_TMP/inquery.sql
	{
		echo "SET work_mem = '256MB';"
		for r in $(seq 1 "$INQ_REPS"); do
			for v in "${INQ[@]}"; do
				IFS='|' read -r name rows q <<<"$v"
				[ "$name" = cer_get ] && echo "SET cache_ext.backend = redis;"
				printf "SELECT '%s', %s, %s, bench_ms(%s);\n" "$name" "$r" "$rows" "$(sed "s/'/''/g; s/.*/'&'/" <<<"$q")"
				[ "$name" = cer_get ] && echo "SET cache_ext.backend = shmem;"
			done
		done
	} | ce_as_pg tee "$script" >/dev/null
	for v in "${INQ[@]}"; do
		IFS='|' read -r name rows q <<<"$v"
		bench_cmd "in-query" "$([ "$name" = cer_get ] && echo "SET cache_ext.backend = redis; ")$q"
	done
	# every lookup must hit
	hits=$(bench_sql -c "SELECT count(cache_get('k:' || (i % 10000))) FROM generate_series(1, 20000) i")
	[ "$hits" = 20000 ] || ce_warn "in-query: cache_get hit $hits of 20000"
	bench_sql -F '|' -f "$script" >"$BENCH_RAW/logs/inquery.out"
	while IFS='|' read -r name r rows ms; do
		[ -n "$ms" ] || continue
		bench_record inquery "$name" 1 "$r" "$(awk -v ms="$ms" -v n="$rows" 'BEGIN { printf "%.1f", ms * 1e6 / n }')" ns/row "rows=$rows ms=$ms"
	done <"$BENCH_RAW/logs/inquery.out"
	awk -F'\t' '$1 == "inquery" { printf "  %-10s round %s  %8s ns/row\n", $2, $4, $5 }' "$BENCH_TSV"
fi

# ---------------------------------------------------------------------------
# 3c. memory per cached entry: 10k entries of 200 bytes, key "m:<i>", TTL 1 h

if has_section memory; then
	ce_log "memory per cached entry"
	read -r e0 b0 <<<"$(bench_sql -F ' ' -c "SELECT entries, bytes_used FROM cache_stats()")"
	bench_sql -c "SELECT count(cache_set('m:' || i, bench_v(), 3600)) FROM generate_series(1, 10000) i" >/dev/null
	read -r e1 b1 <<<"$(bench_sql -F ' ' -c "SELECT entries, bytes_used FROM cache_stats()")"
	bench_record memory ce_shmem 1 1 "$(((b1 - b0) / (e1 - e0)))" bytes/entry "bytes_used delta $((b1 - b0)) / entries delta $((e1 - e0))"
	bench_cmd memory "SELECT count(cache_set('m:' || i, bench_v(), 3600)) FROM generate_series(1, 10000) i; -- cache_stats() bytes_used and entries before/after"

	m0=$($TOOLS redis-mem "$RP")
	$TOOLS redis-load "$RP" m: 1 10000 200 3600
	m1=$($TOOLS redis-mem "$RP")
	bench_record memory redis 1 1 "$(((m1 - m0) / 10000))" bytes/entry "INFO used_memory delta $((m1 - m0)) / 10000 keys (SET EX 3600)"
	bench_cmd memory "SET m:<i> <200 bytes> EX 3600 for i in 1..10000 (bench/tools.py redis-load); INFO memory used_memory before/after"

	read -r mb0 mi0 <<<"$($TOOLS mc-stats "$MC_PORT")"
	bench_sql -c "SELECT count(memcache_set('m:' || i, bench_v(), interval '1 hour')) FROM generate_series(1, 10000) i" >/dev/null
	read -r mb1 mi1 <<<"$($TOOLS mc-stats "$MC_PORT")"
	bench_cmd memory "SELECT count(memcache_set('m:' || i, bench_v(), interval '1 hour')) FROM generate_series(1, 10000) i; -- memcached stats bytes and curr_items before/after"
	bench_record memory memcached 1 1 "$(((mb1 - mb0) / (mi1 - mi0)))" bytes/entry "stats bytes delta $((mb1 - mb0)) / curr_items delta $((mi1 - mi0)) (item bytes; slab rounding not counted)"

	ubytes=$(bench_sql -c "CREATE UNLOGGED TABLE mem_u (key text COLLATE \"C\" PRIMARY KEY, value text, expires_at timestamptz)" \
		-c "INSERT INTO mem_u SELECT 'm:' || i, bench_v(), now() + interval '1 hour' FROM generate_series(1, 10000) i" \
		-c "VACUUM ANALYZE mem_u" \
		-c "SELECT pg_total_relation_size('mem_u')")
	bench_record memory unlogged 1 1 "$((ubytes / 10000))" bytes/entry "pg_total_relation_size $ubytes / 10000 rows (heap + primary key)"
	bench_cmd memory "CREATE UNLOGGED TABLE mem_u (...); INSERT 10k rows; SELECT pg_total_relation_size('mem_u') / 10000"
	awk -F'\t' '$1 == "memory" { printf "  %-10s %6s bytes/entry  (%s)\n", $2, $5, $7 }' "$BENCH_TSV"
fi

# ---------------------------------------------------------------------------
# 3d. prefix invalidation: N keys "p:<i>" among TOTAL, 20-byte values, and
# the longest request of a concurrent reader (1 client reading "q:<i>")

READER_SECS=5
INV_VAL="'vvvvvvvvvvvvvvvvvvvv'"

# reader_start NAME STORE FROM_TABLE NKEYS: the in-server reader
# (bench_reader() in sql/setup.sql) in the background, its slow gets to
# $BENCH_RAW/logs/reader-NAME.  Inside the server, because a client-side
# reader on this 2-core machine mostly measures its own scheduling (the
# last client-side run saw 4-6 ms stalls with no invalidation going on).
reader_start() {
	ce_as_pg env PGOPTIONS="$(bench_pgoptions "$2")" "$CE_PGBIN/psql" -X -h "$CE_PGHOST" -p "$CE_PGPORT" -U postgres -d bench \
		-Atc "COPY (SELECT * FROM bench_reader($3, $READER_SECS, $4)) TO STDOUT" \
		>"$BENCH_RAW/logs/reader-$1" 2>&1 &
	READER_PID=$!
	sleep 1.5
}

# inv_record SYSTEM CASE MS T0 T1 LOGS...: time and stall figures
inv_record() {
	local sys=$1 case=$2 ms=$3 t0=$4 t1=$5
	shift 5
	local inside outside n slow share
	read -r inside outside n slow share <<<"$($TOOLS stall "$t0" "$t1" "$@")"
	bench_record invalidate "$sys" "$case" 1 "$ms" ms
	local what="reader requests overlapping"
	[ "${sys#redis_}" != "$sys" ] || what="reader gets of 50 µs or more overlapping"
	bench_record invalidate_stall "$sys" "$case" 1 "$inside" ms "$what: $n, over 1 ms: $slow; share over 1 ms at other times: $share; longest outside the invalidation: $outside ms"
	printf '  %-22s %-14s %10s ms   reader: longest %s ms during (%s requests, %s over 1 ms), %s ms outside\n' \
		"$sys" "$case" "$ms" "$inside" "$n" "$slow" "$outside"
}

# slowest_command SYSTEM CASE: Redis's longest single command since the
# last "redis-slowlog reset" (what blocked every other Redis client longest)
slowest_command() {
	local ms cmd count
	read -r ms cmd count <<<"$($TOOLS redis-slowlog "$RP" longest)"
	bench_record invalidate_redis_cmd "$1" "$2" 1 "$ms" ms "$cmd; commands of 100 µs or more: $count"
	echo "    longest Redis command: $ms ms ($cmd; $count of 100 µs or more)"
}

# psql_timed LOGNAME PGOPTIONS SQL: run SQL with \timing and DEBUG2, print
# ms.  The server's clock just before and just after (commit included) go
# to the log for psql_window: the reader's stalls are looked for there, not
# in psql's start-up and connection, which would count a fork's noise.
psql_timed() {
	ce_as_pg env PGOPTIONS="$2" "$CE_PGBIN/psql" -X -At -h "$CE_PGHOST" -p "$CE_PGPORT" -U postgres -d bench \
		>"$BENCH_RAW/logs/$1.log" 2>&1 <<-EOF
		SET client_min_messages = debug2;
		SELECT 'window_start', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
		\\timing on
		$3;
		\\timing off
		SELECT 'window_end', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
	EOF
	sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$BENCH_RAW/logs/$1.log" | tail -n 1
}

# psql_window LOGNAME: "start end" (microseconds) of the statement psql_timed ran
psql_window() {
	echo "$(sed -n 's/^window_start|//p' "$BENCH_RAW/logs/$1.log") $(sed -n 's/^window_end|//p' "$BENCH_RAW/logs/$1.log")"
}

if has_section invalidate; then
	ce_log "prefix invalidation (cases n:total = $INV_CASES)"
	big=0
	bench_cmd invalidate "SELECT cache_invalidate_prefix('p:')   -- psql \\timing, SET client_min_messages = debug2"
	bench_cmd invalidate "DELETE FROM inv WHERE key LIKE 'p:%'   -- inv: UNLOGGED (key text COLLATE \"C\" PRIMARY KEY, value text, expires_at timestamptz)"
	bench_cmd invalidate "EVAL <SCAN 0 MATCH p:* COUNT 1000 + UNLINK, until cursor 0> 0 'p:*'   (bench/tools.py redis-unlink-script)"
	bench_cmd invalidate "SCAN MATCH p:* COUNT 1000 + UNLINK per batch, from the client (bench/tools.py redis-unlink-client)"
	bench_cmd invalidate "reader: SELECT * FROM bench_reader(false, $READER_SECS, <keys>)   -- true: from the UNLOGGED table; Redis itself: bench/tools.py redis-probe"
	for cs in $INV_CASES; do
		n=${cs%%:*}
		total=${cs##*:}
		rest=$((total - n))
		label="$((n / 1000))k/$([ "$total" -ge 1000000 ] && echo "$((total / 1000000))M" || echo "$((total / 1000))k")"
		fl=${label//\//-of-}
		# the default 64MB store holds ~450k small entries: 1M needs more
		if [ "$total" -ge 400000 ] && [ "$big" = 0 ]; then
			echo "  (cache_ext.shmem_size = 320MB from here on)"
			pg_restart_shmem 320MB
			big=1
		fi

		# cache_ext, shared memory
		bench_sql -c "SELECT cache_invalidate_prefix('q:') + cache_invalidate_prefix('p:')" \
			-c "SELECT count(cache_set('q:' || i, $INV_VAL, 0)) FROM generate_series(1, $rest) i" \
			-c "SELECT count(cache_set('p:' || i, $INV_VAL, 0)) FROM generate_series(1, $n) i" >/dev/null
		entries=$(bench_sql -c "SELECT entries FROM cache_stats()")
		reader_start "shmem-$fl" shmem false "$rest"
		ms=$(psql_timed "inv-shmem-$fl" "" "SELECT cache_invalidate_prefix('p:')")
		read -r t0 t1 <<<"$(psql_window "inv-shmem-$fl")"
		wait "$READER_PID" || true
		inv_record ce_shmem "$label" "$ms" "$t0" "$t1" "$BENCH_RAW/logs/reader-shmem-$fl"
		hold=$(sed -n 's/.*longest partition lock hold during bulk removal: \([0-9.]*\) ms.*/\1/p' \
			"$BENCH_RAW/logs/inv-shmem-$fl.log" | sort -g | tail -n 1)
		bench_record invalidate_lock ce_shmem "$label" 1 "${hold:-}" ms "entries cached: $entries"
		echo "    longest partition lock hold: ${hold:-?} ms with $entries entries cached"
		# the hold is wall time, so a preempted backend inflates it: repeat
		# without the reader and keep every figure
		holds=()
		for r in 1 2 3; do
			bench_sql -c "SELECT count(cache_set('p:' || i, $INV_VAL, 0)) FROM generate_series(1, $n) i" >/dev/null
			psql_timed "inv-shmem-$fl-again$r" "" "SELECT cache_invalidate_prefix('p:')" >/dev/null
			holds+=("$(sed -n 's/.*longest partition lock hold during bulk removal: \([0-9.]*\) ms.*/\1/p' \
				"$BENCH_RAW/logs/inv-shmem-$fl-again$r.log" | tail -n 1)")
		done
		bench_record invalidate_lock_again ce_shmem "$label" 1 "$(printf '%s\n' "${holds[@]}" | sort -g | head -n 1)" ms "three more runs without the reader: ${holds[*]} ms"
		echo "    again without the reader: ${holds[*]} ms"
		bench_sql -c "SELECT cache_invalidate_prefix('q:')" >/dev/null

		# UNLOGGED table
		bench_sql -c "DROP TABLE IF EXISTS inv" \
			-c "CREATE UNLOGGED TABLE inv (key text COLLATE \"C\" PRIMARY KEY, value text, expires_at timestamptz)" \
			-c "INSERT INTO inv SELECT 'q:' || i, $INV_VAL, now() + interval '1 hour' FROM generate_series(1, $rest) i" \
			-c "INSERT INTO inv SELECT 'p:' || i, $INV_VAL, now() + interval '1 hour' FROM generate_series(1, $n) i" \
			-c "VACUUM ANALYZE inv" >/dev/null
		reader_start "unlogged-$fl" shmem true "$rest"
		ms=$(psql_timed "inv-unlogged-$fl" "" "DELETE FROM inv WHERE key LIKE 'p:%'")
		read -r t0 t1 <<<"$(psql_window "inv-unlogged-$fl")"
		wait "$READER_PID" || true
		inv_record unlogged "$label" "$ms" "$t0" "$t1" "$BENCH_RAW/logs/reader-unlogged-$fl"
		bench_sql -c "DROP TABLE inv" >/dev/null

		# Redis: server-side script, then client-side loop
		for how in script client; do
			"$CE_REDIS_CLI" -p "$RP" flushall >/dev/null
			$TOOLS redis-load "$RP" q: 1 "$rest" 20 0
			$TOOLS redis-load "$RP" p: 1 "$n" 20 0
			$TOOLS redis-probe "$RP" "$READER_SECS" "$BENCH_RAW/logs/probe-$how-$fl" &
			READER_PID=$!
			sleep 1.5
			$TOOLS redis-slowlog "$RP" reset
			read -r ms removed t0 t1 <<<"$($TOOLS "redis-unlink-$how" "$RP" p:)"
			slowest_command "redis_$how" "$label"
			wait "$READER_PID" || true
			[ "$removed" = "$n" ] || ce_warn "redis $how removed $removed of $n"
			inv_record "redis_$how" "$label" "$ms" "$t0" "$t1" "$BENCH_RAW/logs/probe-$how-$fl"
		done

		# cache_ext, Redis store (same keyspace: cache_ext.key_prefix is '')
		if [ "$REDIS_STORE" = 1 ]; then
			"$CE_REDIS_CLI" -p "$RP" flushall >/dev/null
			$TOOLS redis-load "$RP" q: 1 "$rest" 20 0
			$TOOLS redis-load "$RP" p: 1 "$n" 20 0
			reader_start "redis-$fl" redis false "$rest"
			$TOOLS redis-slowlog "$RP" reset
			ms=$(psql_timed "inv-redis-$fl" "-c cache_ext.backend=redis" "SELECT cache_invalidate_prefix('p:')")
			read -r t0 t1 <<<"$(psql_window "inv-redis-$fl")"
			slowest_command ce_redis "$label"
			wait "$READER_PID" || true
			inv_record ce_redis "$label" "$ms" "$t0" "$t1" "$BENCH_RAW/logs/reader-redis-$fl"
			left=$("$CE_REDIS_CLI" -p "$RP" --scan --pattern 'p:*' | wc -l)
			[ "$left" = 0 ] || ce_warn "cache_ext redis store left $left p: keys"
		fi
		"$CE_REDIS_CLI" -p "$RP" flushall >/dev/null
	done
fi

# ---------------------------------------------------------------------------
# 3e. Zipf stream larger than the cache: cache_ext.shmem_size = 8MB (the
# smallest), keys z:1..ZIPF_N, 200-byte values, get then set on a miss.

if has_section zipf; then
	ce_log "Zipf stream: N=$ZIPF_N s=$ZIPF_S, $ZIPF_LEN requests, cache_ext.shmem_size = 8MB"
	pg_restart_shmem 8MB
	stream=$CE_TMP/zipf.txt
	$TOOLS zipf-gen "$ZIPF_N" "$ZIPF_S" "$ZIPF_LEN" 42 "$BENCH_RAW/zipf.txt"
	cp "$BENCH_RAW/zipf.txt" "$stream"
	chmod 644 "$stream"
	bench_cmd zipf "python3 bench/tools.py zipf-gen $ZIPF_N $ZIPF_S $ZIPF_LEN 42 zipf.txt; replay in one session: for each key k, cache_get('z:' || k), on a miss cache_set('z:' || k, <200 bytes>, 0); python3 bench/tools.py lru zipf.txt <entries cache_ext holds>"
	bench_sql -c "DROP TABLE IF EXISTS zipf_stream" -c "CREATE TABLE zipf_stream (seq serial PRIMARY KEY, k integer)" \
		-c "\\copy zipf_stream (k) FROM '$stream'" -c "
CREATE OR REPLACE FUNCTION zipf_replay(half bigint) RETURNS TABLE (hits bigint, total bigint, hits2 bigint, total2 bigint)
LANGUAGE plpgsql AS \$\$
DECLARE
    r record;
    h bigint := 0;
    h2 bigint := 0;
    n bigint := 0;
BEGIN
    FOR r IN SELECT k FROM zipf_stream ORDER BY seq LOOP
        n := n + 1;
        IF cache_get('z:' || r.k) IS NULL THEN
            PERFORM cache_set('z:' || r.k, bench_v(), 0);
        ELSE
            h := h + 1;
            IF n > half THEN h2 := h2 + 1; END IF;
        END IF;
    END LOOP;
    RETURN QUERY SELECT h, n, h2, n - half;
END
\$\$" >/dev/null
	read -r zh zt zh2 zt2 <<<"$(bench_sql -F ' ' -c "SELECT * FROM zipf_replay($((ZIPF_LEN / 2)))")"
	read -r cap ev <<<"$(bench_sql -F ' ' -c "SELECT entries, evictions FROM cache_stats()")"
	read -r lh lt lh2 lt2 <<<"$($TOOLS lru "$BENCH_RAW/zipf.txt" "$cap")"
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }
	bench_record zipf ce_shmem_hit_ratio 1 1 "$(ratio "$zh" "$zt")" ratio "whole stream; second half: $(ratio "$zh2" "$zt2"); entries held: $cap; evictions: $ev"
	bench_record zipf lru_hit_ratio 1 1 "$(ratio "$lh" "$lt")" ratio "exact LRU of $cap entries; second half: $(ratio "$lh2" "$lt2")"
	bench_record zipf entries 1 1 "$cap" entries "entries cache_ext holds at 8MB with 200-byte values"
	printf '  cache_ext CLOCK hit ratio %s (second half %s), exact LRU of %s entries %s (second half %s)\n' \
		"$(ratio "$zh" "$zt")" "$(ratio "$zh2" "$zt2")" "$cap" "$(ratio "$lh" "$lt")" "$(ratio "$lh2" "$lt2")"

	# throughput on the warm cache, pgbench's own random_zipfian stream
	printf '%s\n' "\\set id random_zipfian(1, $ZIPF_N, $ZIPF_S)" \
		"SELECT coalesce(cache_get('z:' || :id), CASE WHEN cache_set('z:' || :id, bench_v(), 0) THEN 'set' END);" |
		ce_as_pg tee "$BENCH_OUT/sql/ce_zipf.sql" >/dev/null
	for rep in $(seq 1 "$REPS"); do
		for c in $CLIENTS; do
			read -r h0 m0 <<<"$(bench_sql -F ' ' -c "SELECT hits, misses FROM cache_stats()")"
			bench_pgbench ce_zipf shmem "$c" "$rep" "$SECS" ce_zipf.sql
			read -r h1 m1 <<<"$(bench_sql -F ' ' -c "SELECT hits, misses FROM cache_stats()")"
			bench_record zipf_pgbench_hit_ratio ce_shmem "$c" "$rep" "$(ratio $((h1 - h0)) $((h1 - h0 + m1 - m0)))" ratio
		done
	done
fi

# ---------------------------------------------------------------------------
# 3f. the write path: pgbench's TPC-B-like transaction in its own database
# (bench_tpcb, pgbench -i -s TPCB_SCALE), without triggers and with
# cache_attach on pgbench_accounts ('acct:{aid}') and pgbench_branches
# ('branches:'), the triggers seeing shared memory only (the database's
# cache_ext.redis_url = '') or shared memory + Redis (the database's
# redis_url pointing at the bench's Redis, which holds 10k unrelated keys).
# The three variants run back to back in each repetition, their order
# rotated from one repetition to the next, so that the machine's drift hits
# them alike: only the ratios measured side by side mean anything.

TPCB_DB=bench_tpcb
TPCB_SCALE=${BENCH_TPCB_SCALE:-10}
# the issue's command is plain "pgbench -b tpcb-like": its default simple
# protocol (prepared makes each transaction cheaper, the triggers' share larger)
TPCB_MODE=${BENCH_TPCB_MODE:-simple}
read -r -a TPCB_VARIANTS <<<"${BENCH_TPCB_VARIANTS:-none shmem redis}"
# unrelated keys in the shared-memory store (300000 fills the default 64MB)
TPCB_SHMEM_KEYS=${BENCH_TPCB_SHMEM_KEYS:-10000}
# the target is at 1 client, where 4-second runs differ by ±10% from one to
# the next: the first client count gets twice the repetitions (not in a
# quick run), the others BENCH_REPS
if [ "$QUICK" = 1 ]; then
	TPCB_REPS=${BENCH_TPCB_REPS:-$REPS}
else
	TPCB_REPS=${BENCH_TPCB_REPS:-$((2 * REPS))}
fi

tpcb_sql() {
	ce_psql -d "$TPCB_DB" -At "$@"
}

# tpcb_variant none|shmem|redis: triggers and the database's redis_url
TPCB_ATTACHED=0
tpcb_variant() {
	local url=''
	[ "$1" = redis ] && url="redis://127.0.0.1:$RP/0"
	if [ "$1" = none ] && [ "$TPCB_ATTACHED" = 1 ]; then
		tpcb_sql -c "SELECT cache_detach('pgbench_accounts')" -c "SELECT cache_detach('pgbench_branches')" >/dev/null
		TPCB_ATTACHED=0
	elif [ "$1" != none ] && [ "$TPCB_ATTACHED" = 0 ]; then
		tpcb_sql -c "SELECT cache_attach('pgbench_accounts', 'acct:{aid}')" \
			-c "SELECT cache_attach('pgbench_branches', 'branches:')" >/dev/null
		TPCB_ATTACHED=1
	fi
	# read by each new session: every pgbench run connects afresh
	tpcb_sql -c "ALTER DATABASE $TPCB_DB SET cache_ext.redis_url = '$url'" >/dev/null
}

# tpcb_check VARIANT: does one write under VARIANT invalidate what it should?
# Prints "shmem <gone|kept>, redis <gone|kept>" for acct:1 and branches:x.
tpcb_check() {
	local sh rd
	"$CE_REDIS_CLI" -p "$RP" mset acct:1 x branches:x x >/dev/null
	tpcb_sql -c "SET cache_ext.backend = shmem" \
		-c "SELECT cache_set('acct:1', 'x', 600) AND cache_set('branches:x', 'x', 600)" >/dev/null
	tpcb_sql -c "BEGIN" -c "UPDATE pgbench_accounts SET abalance = abalance WHERE aid = 1" \
		-c "UPDATE pgbench_branches SET bbalance = bbalance WHERE bid = 1" -c "COMMIT" >/dev/null
	sh=$(tpcb_sql -c "SET cache_ext.backend = shmem" \
		-c "SELECT CASE WHEN cache_get('acct:1') IS NULL AND cache_get('branches:x') IS NULL THEN 'gone'
		           WHEN cache_get('acct:1') IS NOT NULL AND cache_get('branches:x') IS NOT NULL THEN 'kept'
		           ELSE 'partly gone' END")
	rd=$("$CE_REDIS_CLI" -p "$RP" exists acct:1 branches:x)
	case $rd in 0) rd=gone ;; 2) rd=kept ;; *) rd="partly gone" ;; esac
	"$CE_REDIS_CLI" -p "$RP" del acct:1 branches:x >/dev/null
	echo "shmem $sh, redis $rd"
}

# CPU time of the server's exited processes (the postmaster's cutime +
# cstime), in clock ticks: around a run, what its backends used, which a
# busy machine disturbs much less than the wall-clock rate
tpcb_server_cpu() {
	local pid
	pid=$(ce_as_pg head -n 1 "$CE_PGDATA/postmaster.pid")
	awk '{ print $16 + $17 }' "/proc/$pid/stat"
}

# tpcb_pgbench VARIANT CLIENTS REP: one timed run; pgbench's own set-up
# (VACUUM of branches and tellers, TRUNCATE pgbench_history) comes first
tpcb_pgbench() {
	local v=$1 c=$2 rep=$3 log tps lat txns cmds cpu0 cpu1 cpu_us
	local args=(-b tpcb-like -M "$TPCB_MODE" -T "$SECS" -c "$c" -j "$c")
	log=$BENCH_RAW/logs/writes-$v-c$c-r$rep.log
	[ "$rep" = 1 ] && [ "$c" = 1 ] && [ "$v" = none ] &&
		bench_cmd "writes" "pgbench -h 127.0.0.1 -p \$PGPORT -U postgres ${args[*]} $TPCB_DB   -- after CHECKPOINT, for each variant, clients $CLIENTS"
	tpcb_sql -c "CHECKPOINT" >/dev/null
	$TOOLS redis-cmdstats "$RP" "$BENCH_RAW/logs/writes-$v-c$c-r$rep.redis0"
	cpu0=$(tpcb_server_cpu)
	if ! ce_as_pg "$CE_PGBIN/pgbench" -h 127.0.0.1 -p "$CE_PGPORT" -U postgres "${args[@]}" "$TPCB_DB" >"$log" 2>&1; then
		ce_warn "pgbench tpcb-like ($v) -c $c failed:"
		tail -n 5 "$log" >&2 || true
		bench_record writes "tpcb_$v" "$c" "$rep" "" tps "failed"
		return 0
	fi
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$log")
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$log")
	if grep -q 'number of failed transactions: [1-9]' "$log" || grep -qi 'error' "$log"; then
		ce_warn "pgbench tpcb-like ($v) -c $c reported errors"
		grep -i error "$log" | head -n 3 >&2
	fi
	bench_record writes "tpcb_$v" "$c" "$rep" "$tps" tps "lat_ms=$lat"
	# what the triggers asked of Redis, per transaction
	$TOOLS redis-cmdstats "$RP" "$BENCH_RAW/logs/writes-$v-c$c-r$rep.redis1"
	txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
	cmds=$($TOOLS redis-cmddelta "$BENCH_RAW/logs/writes-$v-c$c-r$rep.redis0" "$BENCH_RAW/logs/writes-$v-c$c-r$rep.redis1" "${txns:-0}")
	bench_record writes_redis "tpcb_$v" "$c" "$rep" "" "" "$cmds"
	# the backends have exited (pgbench waited for them): let the postmaster reap them
	sleep 0.3
	cpu1=$(tpcb_server_cpu)
	cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$(getconf CLK_TCK)" -v n="${txns:-0}" \
		'BEGIN { if (n > 0) printf "%.0f", (b - a) / t * 1e6 / n }')
	bench_record writes_cpu "tpcb_$v" "$c" "$rep" "$cpu_us" "us/txn" "server CPU per transaction (exited backends)"
	printf '  %-22s c=%s rep=%s  %10s tps   server CPU %s us/txn   Redis per transaction: %s\n' \
		"tpcb_$v" "$c" "$rep" "$tps" "$cpu_us" "$cmds"
}

if has_section writes; then
	ce_log "write path: pgbench -b tpcb-like, scale $TPCB_SCALE, without triggers / triggers on shmem / shmem + Redis"
	# the Zipf section left an 8MB store: back to the default size
	has_section zipf && pg_restart_shmem 64MB
	ce_psql -d postgres -c "DROP DATABASE IF EXISTS $TPCB_DB" -c "CREATE DATABASE $TPCB_DB"
	ce_as_pg "$CE_PGBIN/pgbench" -h 127.0.0.1 -p "$CE_PGPORT" -U postgres -i -q -s "$TPCB_SCALE" "$TPCB_DB" \
		>"$BENCH_RAW/logs/writes-init.log" 2>&1 ||
		{ tail -n 20 "$BENCH_RAW/logs/writes-init.log" >&2; ce_die "pgbench -i failed"; }
	bench_cmd "writes" "pgbench -i -q -s $TPCB_SCALE $TPCB_DB; CREATE EXTENSION cache_ext"
	tpcb_sql -c "CREATE EXTENSION IF NOT EXISTS cache_ext" -c "VACUUM ANALYZE" >/dev/null
	# unrelated keys in both stores: 10k sessions of 200 bytes, TTL 1 h
	"$CE_REDIS_CLI" -p "$RP" flushall >/dev/null
	$TOOLS redis-load "$RP" app:session: 1 10000 200 3600
	tpcb_sql -c "SET cache_ext.backend = shmem" \
		-c "SELECT count(cache_set('app:session:' || i, repeat('v', 200), 3600)) FROM generate_series(1, $TPCB_SHMEM_KEYS) i" >/dev/null
	bench_cmd "writes" "Redis: SET app:session:<i> <200 bytes> EX 3600 for i in 1..10000 (bench/tools.py redis-load); shmem, in $TPCB_DB: SELECT count(cache_set('app:session:' || i, repeat('v', 200), 3600)) FROM generate_series(1, $TPCB_SHMEM_KEYS) i"
	bench_cmd "writes" "variant none: no triggers, ALTER DATABASE $TPCB_DB SET cache_ext.redis_url = ''"
	bench_cmd "writes" "variant shmem: SELECT cache_attach('pgbench_accounts', 'acct:{aid}'); SELECT cache_attach('pgbench_branches', 'branches:'); ALTER DATABASE $TPCB_DB SET cache_ext.redis_url = ''"
	bench_cmd "writes" "variant redis: the same triggers; ALTER DATABASE $TPCB_DB SET cache_ext.redis_url = 'redis://127.0.0.1:\$REDIS_PORT/0'"
	bench_cmd "writes" "back to no triggers: SELECT cache_detach('pgbench_accounts'); SELECT cache_detach('pgbench_branches')"

	# what each variant's triggers reach (one UPDATE of each table)
	checks=()
	for v in "${TPCB_VARIANTS[@]}"; do
		tpcb_variant "$v"
		r=$(tpcb_check "$v")
		checks+=("$v: $r")
		case $v in
		none) want="shmem kept, redis kept" ;;
		shmem) want="shmem gone, redis kept" ;;
		redis) want="shmem gone, redis gone" ;;
		esac
		[ "$r" = "$want" ] || ce_warn "writes: variant $v: after one write $r (expected $want)"
	done
	meta "writes check" "after one UPDATE of pgbench_accounts (aid 1) and pgbench_branches, keys acct:1 and branches:x: $(printf '%s; ' "${checks[@]}" | sed 's/; $//')"
	first_c=${CLIENTS%% *}
	meta "writes scale" "$TPCB_SCALE"
	meta "writes mode" "$TPCB_MODE"
	meta "writes" "pgbench -b tpcb-like -M $TPCB_MODE -T $SECS, scale $TPCB_SCALE, clients: $CLIENTS, $TPCB_REPS run(s) each at $first_c client(s), $REPS at the others, variants interleaved (order rotated each repetition), CHECKPOINT before each run"
	echo "  check: ${checks[*]}"

	for rep in $(seq 1 "$TPCB_REPS"); do
		# rotate the order: rep 1 none shmem redis, rep 2 shmem redis none, ...
		k=$(((rep - 1) % ${#TPCB_VARIANTS[@]}))
		order=("${TPCB_VARIANTS[@]:$k}" "${TPCB_VARIANTS[@]:0:$k}")
		for c in $CLIENTS; do
			[ "$c" = "$first_c" ] || [ "$rep" -le "$REPS" ] || continue
			for v in "${order[@]}"; do
				tpcb_variant "$v"
				tpcb_pgbench "$v" "$c" "$rep"
			done
		done
	done
	tpcb_variant none

	# What one prefix invalidation that removes nothing costs the shared-memory
	# store (the 'branches:' target when nothing is cached under it): the
	# store as the runs left it, then full (64MB of 200-byte entries).
	inval_us() {
		tpcb_sql -c "SET cache_ext.backend = shmem" -c "DO \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    FOR i IN 1..2000 LOOP PERFORM cache_invalidate_prefix('branches:'); END LOOP;
    RAISE NOTICE 'us=%', round(extract(epoch FROM clock_timestamp() - t0) * 1000000 / 2000, 1);
END \$\$" 2>&1 | sed -n 's/.*NOTICE: *us=//p'
	}
	bench_cmd "writes" "in $TPCB_DB, SET cache_ext.backend = shmem: 2000 x cache_invalidate_prefix('branches:') in a DO loop, then again after SELECT count(cache_set('fill:' || i, repeat('v', 200), 3600)) FROM generate_series(1, 300000) i"
	us0=$(inval_us)
	tpcb_sql -c "SET cache_ext.backend = shmem" \
		-c "SELECT count(cache_set('fill:' || i, repeat('v', 200), 3600)) FROM generate_series(1, 300000) i" >/dev/null
	n=$(tpcb_sql -c "SET cache_ext.backend = shmem" -c "SELECT entries FROM cache_stats()")
	us1=$(inval_us)
	bench_record writes shmem_prefix_nothing_us 1 1 "$us0" us "after the runs, $TPCB_SHMEM_KEYS unrelated keys set"
	bench_record writes shmem_prefix_nothing_full_us 1 1 "$us1" us "$n entries"
	meta "writes: prefix invalidation removing nothing (shmem)" "$us0 µs per call after the runs ($TPCB_SHMEM_KEYS unrelated keys set), $us1 µs with the store full ($n entries)"
	echo "  prefix invalidation removing nothing (shmem): $us0 µs per call after the runs ($TPCB_SHMEM_KEYS unrelated keys set), $us1 µs with $n entries"
	meta "writes redis keys" "$("$CE_REDIS_CLI" -p "$RP" dbsize) keys in Redis at the end (10000 app:session:* before)"
	tpcb_sql -c "SELECT cache_flush()" >/dev/null
	"$CE_REDIS_CLI" -p "$RP" flushall >/dev/null
	[ "${CE_KEEP:-0}" = 1 ] || ce_psql -d postgres -c "DROP DATABASE $TPCB_DB"
fi

# shellcheck source=bench/wal.sh
. "$CE_ROOT/bench/wal.sh"

# ---------------------------------------------------------------------------
# 3g. Redis at scale (issue 14): bench/redis_scale.sh

if has_section redisscale; then
	# shellcheck source=bench/redis_scale.sh
	. "$CE_ROOT/bench/redis_scale.sh"
fi

# ---------------------------------------------------------------------------
# 3h. the near-cache of Redis values (bench/near_cache.sh)

if has_section nearcache; then
	# shellcheck source=bench/near_cache.sh
	. "$CE_ROOT/bench/near_cache.sh"
fi

# ---------------------------------------------------------------------------
# 4. the results file

meta "load at end" "$(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$(dirname "$RESULTS")"
python3 "$CE_ROOT/bench/report.py" "$BENCH_RAW" >"$RESULTS"
if [ -s "$BENCH_RAW/nearcache.md" ]; then
	cat "$BENCH_RAW/nearcache.md" >>"$RESULTS"
fi
ce_log "results: $RESULTS (raw figures and logs: $BENCH_RAW)"
