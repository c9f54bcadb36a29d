# shellcheck shell=bash
#
# bench/wal.sh: section "wal" of bench/run.sh (sourced there, after the
# "writes" section; uses its helpers and settings).  What writing each
# committing transaction's invalidations to WAL (cache_ext.wal_invalidations,
# issue 15) costs the primary:
#
#   - pgbench -b tpcb-like under cache_attach triggers (pgbench_accounts
#     'acct:{aid}', pgbench_branches 'branches:'), cache_ext.wal_invalidations
#     off and on, on the shared-memory store alone and with Redis too;
#   - the same two UPDATEs in a server-side loop (one DO block committing
#     each transaction), off and on: the server's work alone;
#   - the WAL bytes per transaction of each run (pg_current_wal_insert_lsn()
#     before and after, over the transactions pgbench processed), whose
#     difference between on and off is what the records add.
#
# The variants run back to back in each repetition, their order rotated
# from one repetition to the next; only ratios measured side by side in one
# run mean anything.  Results: bench/out/<date-time>/wal.md (also printed),
# and rows "wal" of results.tsv.
#
# Rerun alone:  BENCH_SECTIONS=wal bash bench/run.sh
# (with CE_PGPREFIX=... BENCH_SKIP_BUILD=1 against a relocated PostgreSQL)

WAL_DB=bench_wal
WAL_VARIANTS=(shmem_off shmem_on redis_off redis_on)

wal_sql() {
	ce_psql -d "$WAL_DB" -At "$@"
}

# wal_variant NAME: cache_ext.wal_invalidations, and the database's redis_url
wal_variant() {
	local url='' on=off
	case $1 in *redis*) url="redis://127.0.0.1:$RP/0" ;; esac
	case $1 in *_on) on=on ;; esac
	ce_psql -d postgres -c "ALTER SYSTEM SET cache_ext.wal_invalidations = $on" \
		-c "SELECT pg_reload_conf()" >/dev/null
	wal_sql -c "ALTER DATABASE $WAL_DB SET cache_ext.redis_url = '$url'" >/dev/null
	# the reload reaches every backend before its next command; a new
	# session after it sees the new value
	local i
	for i in $(seq 1 50); do
		[ "$(wal_sql -c "SHOW cache_ext.wal_invalidations")" = "$on" ] && return 0
		sleep 0.1
	done
	ce_die "cache_ext.wal_invalidations did not become $on"
}

# wal_pgbench VARIANT CLIENTS REP: one timed run, its tps and WAL bytes
wal_pgbench() {
	local v=$1 c=$2 rep=$3 log tps txns lsn0 lsn1 bytes per
	local args=(-n -b tpcb-like -M "$TPCB_MODE" -T "$SECS" -c "$c" -j "$c")
	log=$BENCH_RAW/logs/wal-$v-c$c-r$rep.log
	[ "$rep" = 1 ] && [ "$c" = "${CLIENTS%% *}" ] && [ "$v" = "${WAL_VARIANTS[0]}" ] &&
		bench_cmd "wal" "pgbench -h 127.0.0.1 -p \$PGPORT -U postgres ${args[*]} $WAL_DB   -- after VACUUM and CHECKPOINT, for each variant, clients $CLIENTS"
	wal_sql -c "VACUUM pgbench_branches, pgbench_tellers" -c "TRUNCATE pgbench_history" \
		-c "CHECKPOINT" >/dev/null
	lsn0=$(wal_sql -c "SELECT pg_current_wal_insert_lsn()")
	if ! ce_as_pg "$CE_PGBIN/pgbench" -h 127.0.0.1 -p "$CE_PGPORT" -U postgres "${args[@]}" "$WAL_DB" >"$log" 2>&1; then
		ce_warn "pgbench tpcb-like ($v) -c $c failed:"
		tail -n 5 "$log" >&2 || true
		bench_record wal "$v" "$c" "$rep" "" tps "failed"
		return 0
	fi
	lsn1=$(wal_sql -c "SELECT pg_current_wal_insert_lsn()")
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$log")
	txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
	bytes=$(wal_sql -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')::bigint")
	per=$(awk -v b="$bytes" -v t="${txns:-0}" 'BEGIN { if (t > 0) printf "%.1f", b / t; else print "" }')
	bench_record wal "$v" "$c" "$rep" "$tps" tps "wal_bytes_per_txn=$per"
	printf '  %-12s c=%s rep=%s  %10s tps  %8s WAL bytes/transaction\n' "$v" "$c" "$rep" "$tps" "$per"
}

# wal_loop VARIANT REP: the same transaction, N times in one DO block that
# commits each (no client round trips: the record's share of the server's
# work is larger than under pgbench).  Records transactions per second of
# wall time and of the backend's own CPU time (/proc/self/schedstat: on a
# shared, loaded machine the CPU time a backend needs varies far less than
# the wall time it takes).  N: WAL_LOOP_N, a tenth of it with Redis.
wal_loop() {
	local v=$1 rep=$2 n=$WAL_LOOP_N out ms cpu
	case $v in redis*) n=$((WAL_LOOP_N / 10)) ;; esac
	out=$(wal_sql -c "
		DO \$\$
		DECLARE
			t0 timestamptz := clock_timestamp();
			c0 bigint := split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint;
		BEGIN
			FOR i IN 1..$n LOOP
				UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1 + (i * 7919) % ($WAL_SCALE * 100000);
				UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1 + i % $WAL_SCALE;
				COMMIT;
			END LOOP;
			PERFORM set_config('bench.ms', (extract(epoch FROM clock_timestamp() - t0) * 1000)::text, false);
			PERFORM set_config('bench.cpu_ms',
				((split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - c0) / 1e6)::text, false);
		END \$\$" -c "SELECT current_setting('bench.ms') || ' ' || current_setting('bench.cpu_ms')" | tail -n 1)
	ms=${out%% *}
	cpu=${out##* }
	local tps ctps
	tps=$(awk -v ms="$ms" -v n="$n" 'BEGIN { if (ms > 0) printf "%.1f", n * 1000 / ms }')
	ctps=$(awk -v ms="$cpu" -v n="$n" 'BEGIN { if (ms > 0) printf "%.1f", n * 1000 / ms }')
	bench_record wal "loop_$v" 1 "$rep" "$tps" tps "n=$n"
	bench_record wal "loopcpu_$v" 1 "$rep" "$ctps" tps "n=$n"
	printf '  %-12s loop rep=%s  %10s transactions/s, %10s per CPU second of the backend\n' "$v" "$rep" "$tps" "$ctps"
}

# median of the numbers on stdin
wal_median() {
	sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# wal_figure VARIANT CLIENTS tps|bytes: the median over the repetitions
wal_figure() {
	awk -F'\t' -v v="$1" -v c="$2" -v what="$3" '
		$1 == "wal" && $2 == v && $3 == c && $5 != "" {
			if (what == "tps") print $5
			else { sub(/^wal_bytes_per_txn=/, "", $7); print $7 }
		}' "$BENCH_TSV" | wal_median
}

wal_ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.3f", a / b; else print "?" }'
}

wal_report() {
	local out=$BENCH_RAW/wal.md c base on v
	{
		echo "## WAL invalidations (issue 15): cost on the primary"
		echo
		echo "pgbench -b tpcb-like -n -M $TPCB_MODE -T $SECS, scale $WAL_SCALE, $WAL_REPS repetition(s), variants interleaved (order rotated each repetition), median shown."
		echo "Triggers: cache_attach('pgbench_accounts', 'acct:{aid}'), cache_attach('pgbench_branches', 'branches:')."
		echo "Server: $PGCONF_LINES."
		echo
		echo "| store(s) written | clients | tps, WAL off | tps, WAL on | on/off | WAL bytes/txn, off | on | added |"
		echo "|---|---|---|---|---|---|---|---|"
		for c in $CLIENTS; do
			for v in shmem redis; do
				base=$(wal_figure "${v}_off" "$c" tps)
				on=$(wal_figure "${v}_on" "$c" tps)
				local b0 b1
				b0=$(wal_figure "${v}_off" "$c" bytes)
				b1=$(wal_figure "${v}_on" "$c" bytes)
				printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' \
					"$([ "$v" = shmem ] && echo "shared memory" || echo "shared memory + Redis")" \
					"$c" "$base" "$on" "$(wal_ratio "$on" "$base")" "$b0" "$b1" \
					"$(awk -v a="$b1" -v b="$b0" 'BEGIN { if (a != "" && b != "") printf "%+.1f", a - b; else print "?" }')"
			done
		done
		echo
		echo "Server side alone (the two UPDATEs in one DO block, each transaction committed: $WAL_LOOP_N transactions, $((WAL_LOOP_N / 10)) with Redis; $WAL_LOOP_REPS repetitions, median), per second of wall time and per second of the backend's CPU time (/proc/self/schedstat):"
		echo
		echo "| store(s) written | per wall s, WAL off | WAL on | on/off | per CPU s, WAL off | WAL on | on/off |"
		echo "|---|---|---|---|---|---|---|"
		for v in shmem redis; do
			local c0 c1
			base=$(wal_figure "loop_${v}_off" 1 tps)
			on=$(wal_figure "loop_${v}_on" 1 tps)
			c0=$(wal_figure "loopcpu_${v}_off" 1 tps)
			c1=$(wal_figure "loopcpu_${v}_on" 1 tps)
			printf '| %s | %s | %s | %s | %s | %s | %s |\n' \
				"$([ "$v" = shmem ] && echo "shared memory" || echo "shared memory + Redis")" \
				"$base" "$on" "$(wal_ratio "$on" "$base")" "$c0" "$c1" "$(wal_ratio "$c1" "$c0")"
		done
		echo
		echo "All runs (tps, in repetition order):"
		echo
		for v in "${WAL_VARIANTS[@]}"; do
			for c in $CLIENTS; do
				echo "- $v c=$c: $(awk -F'\t' -v v="$v" -v c="$c" '$1 == "wal" && $2 == v && $3 == c { printf "%s ", int($5) }' "$BENCH_TSV")"
			done
			echo "- loop $v: $(awk -F'\t' -v v="loop_$v" '$1 == "wal" && $2 == v { printf "%s ", int($5) }' "$BENCH_TSV")"
			echo "- loop $v, per CPU s: $(awk -F'\t' -v v="loopcpu_$v" '$1 == "wal" && $2 == v { printf "%s ", int($5) }' "$BENCH_TSV")"
		done
		echo
		echo "Target: on/off >= 0.95."
	} >"$out"
	cat "$out"
	meta "wal" "see $out"
}

if has_section wal; then
	ce_log "WAL invalidations: pgbench -b tpcb-like with triggers, cache_ext.wal_invalidations off / on"
	WAL_SCALE=${BENCH_WAL_SCALE:-${TPCB_SCALE:-10}}
	WAL_REPS=${BENCH_WAL_REPS:-${TPCB_REPS:-$REPS}}
	WAL_LOOP_N=${BENCH_WAL_LOOP_N:-5000}
	[ "$QUICK" = 1 ] && WAL_LOOP_N=${BENCH_WAL_LOOP_N:-1000}
	WAL_LOOP_REPS=${BENCH_WAL_LOOP_REPS:-$((2 * WAL_REPS))}
	ce_psql -d postgres -c "DROP DATABASE IF EXISTS $WAL_DB" -c "CREATE DATABASE $WAL_DB"
	ce_as_pg "$CE_PGBIN/pgbench" -h 127.0.0.1 -p "$CE_PGPORT" -U postgres -i -q -s "$WAL_SCALE" "$WAL_DB" \
		>"$BENCH_RAW/logs/wal-init.log" 2>&1 ||
		{ tail -n 20 "$BENCH_RAW/logs/wal-init.log" >&2; ce_die "pgbench -i failed"; }
	wal_sql -c "CREATE EXTENSION IF NOT EXISTS cache_ext" -c "VACUUM ANALYZE" \
		-c "SELECT cache_attach('pgbench_accounts', 'acct:{aid}')" \
		-c "SELECT cache_attach('pgbench_branches', 'branches:')" >/dev/null
	bench_cmd "wal" "pgbench -i -q -s $WAL_SCALE $WAL_DB; CREATE EXTENSION cache_ext; SELECT cache_attach('pgbench_accounts', 'acct:{aid}'); SELECT cache_attach('pgbench_branches', 'branches:')"
	bench_cmd "wal" "variants: ALTER SYSTEM SET cache_ext.wal_invalidations = off|on; SELECT pg_reload_conf(); ALTER DATABASE $WAL_DB SET cache_ext.redis_url = '' (shmem) | 'redis://127.0.0.1:\$REDIS_PORT/0' (redis)"

	# does a record reach WAL at all?  (one UPDATE, on and off)
	for v in shmem_off shmem_on; do
		wal_variant "$v"
		lsn0=$(wal_sql -c "SELECT pg_current_wal_insert_lsn()")
		wal_sql -c "UPDATE pgbench_accounts SET abalance = abalance WHERE aid = 1" >/dev/null
		lsn1=$(wal_sql -c "SELECT pg_current_wal_insert_lsn()")
		meta "wal one update $v" "$(wal_sql -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')") bytes of WAL"
	done

	for rep in $(seq 1 "$WAL_REPS"); do
		k=$(((rep - 1) % ${#WAL_VARIANTS[@]}))
		order=("${WAL_VARIANTS[@]:$k}" "${WAL_VARIANTS[@]:0:$k}")
		for c in $CLIENTS; do
			for v in "${order[@]}"; do
				wal_variant "$v"
				wal_pgbench "$v" "$c" "$rep"
			done
		done
	done
	for rep in $(seq 1 "$WAL_LOOP_REPS"); do
		k=$(((rep - 1) % ${#WAL_VARIANTS[@]}))
		order=("${WAL_VARIANTS[@]:$k}" "${WAL_VARIANTS[@]:0:$k}")
		for v in "${order[@]}"; do
			wal_variant "$v"
			wal_loop "$v" "$rep"
		done
	done
	wal_variant shmem_off
	ce_psql -d postgres -c "ALTER SYSTEM RESET cache_ext.wal_invalidations" -c "SELECT pg_reload_conf()" >/dev/null
	wal_report
	[ "${CE_KEEP:-0}" = 1 ] || ce_psql -d postgres -c "DROP DATABASE $WAL_DB"
fi
