#!/usr/bin/env bash
# Randomized coherence check (issues 5 and 12).  Writers update rows of a
# partitioned table that cache_attach() watches: through the table, aimed
# at its partitions, and from sessions on the other store.  Readers go
# through cache_fetch and through cache_get + cache_set: in READ COMMITTED
# (one statement per step, and in a single statement whose snapshot
# predates its miss) and in REPEATABLE READ transactions.  Meanwhile Redis
# is paused, then killed and restarted: the invalidations it could not take
# are queued and delivered once it is back.
#
# A writer records each version once its commit has returned; each reader
# first reads the last such version, then the cached one; a cached version
# older than that is a stale read (the contract's promise starts when the
# commit returns).  After the run, once the queue is empty, every value
# left in either store must be the row's current version.  Runs with the
# readers on each store; passes when no stale read was seen at any time,
# none is left at the end, the queue drained, and the readers did cache and
# read values (STRESS_MIN_HITS, STRESS_MIN_SETS: a cache that refuses every
# set is never stale).  Prints the number of
# invalidations queued and delivered (cache_stats()).
#
# A hot standby reader (issue 15): the primary turns on
# cache_ext.wal_invalidations and a streaming standby is made from it
# (pg_basebackup, as the owner of the primary's data directory); readers on
# the standby, through cache_fetch and cache_get + cache_set on the same
# store, first read the row from the standby's own replayed table, then the
# cached version: an older one is a stale read relative to the standby's
# data.  After the run, once the standby has replayed everything and its
# queue is empty, its values must be the rows' current versions too.  The
# standby keeps its Redis values under cache_ext.key_prefix 'standby:', so
# that the primary's readers are checked against the primary's promise: a
# value that a lagging standby stores in a Redis shared under one prefix
# can be served by the primary until the standby replays the write (the
# contract's promise for that case; test/t/150_standby.pl checks it).
#
# Environment: the PG* variables; REDIS_PORT (and REDIS_HOST, REDIS_CLI,
# REDIS_SERVER) for the Redis parts, skipped without it;
# STRESS_SECONDS (15) per store; STRESS_DRAIN_SECONDS (15);
# STRESS_STANDBY=0 to run without the standby.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pgbench=${PGBIN:+$PGBIN/}pgbench
duration=${STRESS_SECONDS:-15}
drain_secs=${STRESS_DRAIN_SECONDS:-15}
min_hits=${STRESS_MIN_HITS:-1000}
min_sets=${STRESS_MIN_SETS:-100}
status=0
tmp=$(mktemp -d)

psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# ---- Redis: pause, kill, restart (the throwaway one of test/run.sh) ----

have_redis=0
[ -n "${REDIS_PORT:-}" ] && have_redis=1
redis_cli() { "${REDIS_CLI:-redis-cli}" -h "${REDIS_HOST:-127.0.0.1}" -p "$REDIS_PORT" "$@"; }

redis_killed=0
if [ "$have_redis" = 1 ]; then
	# how it was started, to start it again the same way
	redis_conf() { redis_cli CONFIG GET "$1" | sed -n 2p; }
	r_dir=$(redis_conf dir)
	r_sock=$(redis_conf unixsocket)
	r_sockperm=$(redis_conf unixsocketperm)
	r_log=$(redis_conf logfile)
	r_pidfile=$(redis_conf pidfile)
	r_owner=$(stat -c %U "$r_dir")
fi

as_redis_owner() {
	if [ "$(id -un)" = "$r_owner" ]; then
		"$@"
	elif [ "$(id -u)" = 0 ]; then
		runuser -u "$r_owner" -- "$@"
	else
		sudo -u "$r_owner" "$@"
	fi
}

redis_up() { redis_cli PING 2>/dev/null | grep -q PONG; }

redis_kill() {
	local pid
	pid=$(redis_cli INFO server | tr -d '\r' | sed -n 's/^process_id:\([0-9]*\)$/\1/p')
	redis_killed=1
	as_redis_owner kill -9 "$pid"
	for _ in $(seq 1 50); do redis_up || return 0; sleep 0.1; done
}

redis_start() {
	local args=(--port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no
		--daemonize yes --dir "$r_dir")
	[ -z "$r_sock" ] || args+=(--unixsocket "$r_sock" --unixsocketperm "${r_sockperm:-777}")
	[ -z "$r_pidfile" ] || args+=(--pidfile "$r_pidfile")
	[ -z "$r_log" ] || args+=(--logfile "$r_log")
	as_redis_owner "${REDIS_SERVER:-redis-server}" "${args[@]}"
	for _ in $(seq 1 100); do
		if redis_up; then
			redis_killed=0
			return 0
		fi
		sleep 0.1
	done
	echo "redis-server did not start again" >&2
	return 1
}

# ---- the standby ----

with_standby=${STRESS_STANDBY:-1}
standby_started=0
sdir=
sport=

pg_owner() { stat -c %U "$(psql -X -Atqc 'SHOW data_directory')"; }

as_pg_owner() {
	if [ "$(id -un)" = "$pg_owner" ]; then
		"$@"
	elif [ "$(id -u)" = 0 ]; then
		runuser -u "$pg_owner" -- "$@"
	else
		sudo -u "$pg_owner" "$@"
	fi
}

# A port nothing listens on, from $1 (default PGPORT + 101) up.  Not a
# guarantee: a client socket may hold it as its local port, so the standby's
# start is retried on another one.
free_port() {
	local p
	for p in $(seq "${1:-$((PGPORT + 101))}" $((PGPORT + 300))); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# psql on the standby
spsql() { PGHOST=127.0.0.1 PGPORT=$sport psql -X -q -v ON_ERROR_STOP=1 "$@"; }

standby_start() {
	pg_owner=$(pg_owner)
	sdir=$(mktemp -d)
	chown "$pg_owner" "$sdir"
	psql_q -c "ALTER SYSTEM SET cache_ext.wal_invalidations = on" -c "SELECT pg_reload_conf()" >/dev/null
	as_pg_owner "${PGBIN:+$PGBIN/}pg_basebackup" -D "$sdir/data" -X stream -R -c fast \
		>"$sdir/basebackup.log" 2>&1 || { cat "$sdir/basebackup.log" >&2; return 1; }
	as_pg_owner tee -a "$sdir/data/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sdir'
hot_standby = on
hot_standby_feedback = on
max_standby_streaming_delay = -1
cache_ext.key_prefix = 'standby:'
CONF
	local attempt
	sport=$((PGPORT + 100))
	for attempt in 1 2 3 4 5; do
		sport=$(free_port $((sport + 1))) || return 1
		if as_pg_owner "${PGBIN:+$PGBIN/}pg_ctl" -D "$sdir/data" -l "$sdir/standby.log" \
			-o "-p $sport" -w -t 60 start >/dev/null; then
			standby_started=1
			break
		fi
		# another port if this one could not be bound, else give up
		grep -q 'could not bind' "$sdir/standby.log" && [ "$attempt" -lt 5 ] ||
			{ tail -n 30 "$sdir/standby.log" >&2; return 1; }
	done
	[ "$(spsql -Atc 'SELECT pg_is_in_recovery()')" = t ] || return 1
}

standby_stop() {
	if [ "$standby_started" = 1 ]; then
		as_pg_owner "${PGBIN:+$PGBIN/}pg_ctl" -D "$sdir/data" -m immediate -w stop >/dev/null 2>&1 || true
		standby_started=0
	fi
	[ -z "$sdir" ] || rm -rf "$sdir"
	psql_q -c "ALTER SYSTEM RESET cache_ext.wal_invalidations" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
}

# Waits until the standby has replayed everything the primary wrote.
standby_catch_up() {
	local target
	target=$(psql_q -Atc "SELECT pg_current_wal_flush_lsn()")
	SECONDS=0
	while [ "$SECONDS" -lt 30 ]; do
		[ "$(spsql -Atc "SELECT pg_last_wal_replay_lsn() >= '$target'::pg_lsn")" = t ] && return 0
		sleep 0.2
	done
	return 1
}

cleanup() {
	local rc=$?
	jobs -p | xargs -r kill 2>/dev/null || true
	standby_stop
	if [ "$have_redis" = 1 ] && ! redis_up; then
		redis_start || true
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT

# During the run: Redis does not answer for 1.5 s, then is killed and
# started again 2 s later.
outage() {
	sleep "$(awk -v d="$duration" 'BEGIN { print d / 5 }')"
	echo "  [redis paused for 1.5 s]"
	redis_cli CLIENT PAUSE 1500 ALL >/dev/null
	sleep "$(awk -v d="$duration" 'BEGIN { print d / 4 }')"
	echo "  [redis killed]"
	redis_kill
	sleep 2
	redis_start
	echo "  [redis restarted]"
}

# The Redis row's invalidations_queued, or nothing if there is no such column.
queued() {
	PGOPTIONS="-c cache_ext.backend=redis -c client_min_messages=error" \
		psql -X -Atq -c "SELECT invalidations_queued FROM cache_stats()" 2>/dev/null || true
}

# Samples invalidations_queued while the run lasts; keeps the peak.
monitor() {
	local peak=0 q
	while :; do
		q=$(queued)
		if [ -n "$q" ] && [ "$q" -gt "$peak" ]; then
			peak=$q
			echo "$peak" >"$tmp/peak"
		fi
		sleep 0.3
	done
}

# The queue's columns of cache_stats(), as name=value.
queue_stats() {
	PGOPTIONS="-c cache_ext.backend=redis -c client_min_messages=error" \
		psql -X -Atq -c "SELECT coalesce(string_agg(key || '=' || value, ' '), 'n/a (cache_stats() has no queue columns)')
			FROM jsonb_each_text((SELECT to_jsonb(s) FROM cache_stats() s))
			WHERE key ~ 'queue|deliver'" 2>/dev/null || echo "n/a"
}

# ---- the table ----

psql_q >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
DROP TABLE IF EXISTS stress_items, stress_done, stress_stale;
CREATE TABLE stress_items (id int PRIMARY KEY, version int NOT NULL) PARTITION BY RANGE (id);
CREATE TABLE stress_items_lo PARTITION OF stress_items FOR VALUES FROM (1) TO (11);
CREATE TABLE stress_items_hi PARTITION OF stress_items FOR VALUES FROM (11) TO (21);
INSERT INTO stress_items SELECT i, 0 FROM generate_series(1, 20) i;
CREATE TABLE stress_done (id int, version int);
CREATE INDEX ON stress_done (id, version);
CREATE TABLE stress_stale (path text, id int, committed int, cached int,
	at timestamptz DEFAULT clock_timestamp());
SELECT cache_attach('stress_items', 'stress:{id}', 'stress_aside:{id}');
SQL

if [ "$with_standby" = 1 ]; then
	standby_start || { echo "FAIL: could not start the standby (STRESS_STANDBY=0 runs without it)"; exit 1; }
	echo "standby on port $sport, replaying with cache_ext.wal_invalidations = on"
fi

# Values left in a store that are not the row's current version
# (final_stale STORE [psql], psql_q by default).
final_stale() {
	PGOPTIONS="-c cache_ext.backend=$1 -c client_min_messages=error" "${2:-psql_q}" -Atc "
		SELECT count(*) FROM stress_items i,
			LATERAL (SELECT cache_get('stress_aside:' || i.id) AS aside,
			                cache_get('stress:' || i.id) AS fetched) c
		WHERE (c.aside IS NOT NULL AND c.aside::int <> i.version)
		   OR (c.fetched IS NOT NULL AND (c.fetched::jsonb -> 0 ->> 'version')::int <> i.version)"
}

stores=shmem
[ "$have_redis" = 1 ] && stores="shmem redis"

for backend in $stores; do
	other=redis
	[ "$backend" = redis ] && other=shmem
	export PGOPTIONS="-c cache_ext.backend=$backend -c client_min_messages=error"
	psql_q -c "TRUNCATE stress_stale, stress_done" -c "SELECT cache_reset_stats()" >/dev/null
	for b in $stores; do
		PGOPTIONS="-c cache_ext.backend=$b" psql_q -c "SELECT cache_flush()" >/dev/null
	done
	scripts=(-f "$here/stress/writer.sql@2" -f "$here/stress/writer_part.sql@1"
		-f "$here/stress/fetch_reader.sql@3" -f "$here/stress/aside_reader.sql@2"
		-f "$here/stress/rc_reader.sql@2" -f "$here/stress/rr_reader.sql@2")
	[ "$have_redis" = 1 ] && scripts+=(-f "$here/stress/writer_other.sql@1")

	if [ "$have_redis" = 1 ]; then
		echo "$backend: readers on $backend, writers on both stores, $duration s, Redis paused, killed and restarted"
	else
		echo "$backend: readers and writers on $backend, $duration s (no Redis)"
	fi
	rm -f "$tmp/peak" "$tmp/standby_stale"
	: >"$tmp/standby_stale"
	pids=()
	if [ "$with_standby" = 1 ]; then
		for b in $stores; do
			PGOPTIONS="-c cache_ext.backend=$b" spsql -c "SELECT cache_flush()" >/dev/null
		done
		spsql -c "SELECT cache_reset_stats()" >/dev/null
		PGHOST=127.0.0.1 PGPORT=$sport "$pgbench" -n -c 3 -j 1 -T "$duration" \
			-D stalefile="$tmp/standby_stale" \
			-f "$here/stress/standby_fetch_reader.sql@1" \
			-f "$here/stress/standby_aside_reader.sql@1" >"$tmp/standby_out" 2>&1 &
		standby_pid=$!
	fi
	if [ "$have_redis" = 1 ]; then
		monitor &
		pids+=($!)
		outage &
		outage_pid=$!
	fi
	set +e
	out=$("$pgbench" -n -c 8 -j 2 -T "$duration" -D other="'$other'" "${scripts[@]}" 2>&1)
	rc=$?
	set -e
	if [ "$have_redis" = 1 ]; then
		wait "$outage_pid" || { echo "FAIL $backend: the Redis outage did not run"; status=1; }
	fi
	s_rc=0
	if [ "$with_standby" = 1 ]; then
		wait "$standby_pid" || s_rc=$?
	fi

	# the queue drains once Redis answers
	q_end=$(queued)
	drained=1
	if [ -n "$q_end" ]; then
		SECONDS=0
		while [ "$(queued)" != 0 ] && [ "$SECONDS" -lt "$drain_secs" ]; do
			sleep 0.2
		done
		[ "$(queued)" = 0 ] || drained=0
	fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done

	# the standby: replayed everything, its own queue drained
	s_stale=0
	s_left=0
	s_ok=1
	if [ "$with_standby" = 1 ]; then
		s_stale=$(wc -l <"$tmp/standby_stale")
		standby_catch_up || { echo "  the standby did not catch up within 30 s"; s_ok=0; }
		SECONDS=0
		while [ "$SECONDS" -lt "$drain_secs" ]; do
			q=$(PGOPTIONS="-c cache_ext.backend=redis -c client_min_messages=error" \
				spsql -Atc "SELECT invalidations_queued FROM cache_stats()" 2>/dev/null || echo 0)
			[ "$q" = 0 ] && break
			sleep 0.2
		done
		[ "${q:-0}" = 0 ] || { echo "  the standby's queue did not drain within $drain_secs s"; s_ok=0; }
		for b in $stores; do
			n=$(final_stale "$b" spsql)
			[ "$n" = 0 ] || echo "  $n stale values left in the $b store seen from the standby after the run"
			s_left=$((s_left + n))
		done
		s_ops=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$tmp/standby_out")
		PGOPTIONS="-c cache_ext.backend=$backend" spsql -Atc "SELECT '  standby stats: hits=' || hits || ' misses=' || misses || ' sets=' || sets || ' errors=' || errors FROM cache_stats()"
		s_useful=$(PGOPTIONS="-c cache_ext.backend=$backend" spsql -Atc "SELECT hits >= $((min_hits / 10)) AND sets >= $((min_sets / 10)) FROM cache_stats()")
		echo "  standby: ${s_ops:-0} reads, $s_stale stale reads relative to its own replayed data, $s_left stale values after the run"
		[ "$s_stale" = 0 ] || sort "$tmp/standby_stale" | head -n 10 | sed 's/^/    stale: /'
		if [ "$s_rc" -ne 0 ] || [ -z "$s_ops" ] || [ "$s_ops" -eq 0 ]; then
			grep -E 'ERROR|FATAL|aborted' "$tmp/standby_out" | head -n 10
			echo "  the standby readers failed (exit status $s_rc)"
			s_ok=0
		fi
		[ "$s_useful" = t ] || { echo "  the standby readers stored or read too little for the check to mean anything"; s_ok=0; }
		[ "$s_stale" = 0 ] && [ "$s_left" = 0 ] || s_ok=0
	fi

	ops=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	writes=$(psql_q -Atc "SELECT count(*) FROM stress_done")
	stale=$(psql_q -Atc "SELECT count(*) FROM stress_stale")
	left=0
	for b in $stores; do
		n=$(final_stale "$b")
		[ "$n" = 0 ] || echo "  $n stale values left in the $b store after the run"
		left=$((left + n))
	done
	psql_q -Atc "SELECT '  stats: hits=' || hits || ' misses=' || misses || ' sets=' || sets || ' errors=' || errors FROM cache_stats()"
	# a check that passes because nothing was ever cached proves nothing
	useful=$(psql_q -Atc "SELECT hits >= $min_hits AND sets >= $min_sets FROM cache_stats()")
	if [ "$have_redis" = 1 ]; then
		echo "  invalidations queued: peak $(cat "$tmp/peak" 2>/dev/null || echo "${q_end:-n/a}") during the run, ${q_end:-n/a} when it ended; now: $(queue_stats)"
	fi
	echo "$backend: ${ops:-0} operations ($writes committed writes), $stale stale reads during the run, $left stale values after the last delivery"
	if [ "$rc" -ne 0 ] || [ -z "$ops" ] || [ "$ops" -eq 0 ]; then
		# the errors that aborted clients, then the summary
		grep -E 'ERROR|FATAL|aborted' <<<"$out" | head -n 10
		echo "$out" | tail -n 20
		echo "FAIL $backend: pgbench failed (exit status $rc)"
		status=1
	elif [ "$stale" != 0 ] || [ "$left" != 0 ] || [ "$drained" != 1 ] || [ "$useful" != t ] || [ "$s_ok" != 1 ]; then
		[ "$useful" = t ] || echo "  the readers stored or read too little for the check to mean anything (want at least $min_hits hits and $min_sets sets)"
		psql_q -Atc "SELECT '  stale reads by reader: ' || coalesce(string_agg(path || '=' || n, ' '), 'none')
			FROM (SELECT path, count(*) AS n FROM stress_stale GROUP BY path ORDER BY path) s"
		psql_q -c "SELECT path, id, committed, cached, at FROM stress_stale ORDER BY at LIMIT 10"
		[ "$drained" = 1 ] || echo "  the queue did not drain within $drain_secs s"
		echo "FAIL $backend"
		status=1
	else
		echo "ok $backend"
	fi
done
unset PGOPTIONS
psql_q -c "DROP TABLE stress_items, stress_done, stress_stale" >/dev/null
exit $status
