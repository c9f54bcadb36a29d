#!/usr/bin/env bash
#
# bench/redis_scale.sh: Redis invalidation at production scale (issue 14,
# part 1), side by side in one run:
#
#   update   one-row UPDATE under cache_attach('users', 'users:all',
#            'users:by_id:{user_id}') on the Redis store, with 0 and with
#            SCALE_UNRELATED (1,000,000) unrelated keys in Redis (pgbench,
#            1 client, latency); the 1M case again in sessions whose
#            redis_url is spelled differently (localhost), which the key
#            directory does not serve: the SCAN path, as before
#   prefix   removal of 10k keys among 100k: cache_invalidate_prefix('p:')
#            against the SCAN+UNLINK Lua script (bench/tools.py
#            redis-unlink-script) on the same keys
#   tpcb     pgbench -b tpcb-like (scale 10, 10k unrelated keys in Redis)
#            without triggers and with cache_attach on pgbench_accounts
#            ('acct:{aid}') and pgbench_branches ('branches:') on Redis
#
# Variants alternate within each repetition, their order rotated: only
# the ratios mean anything (the machine is noisy).
#
# Standalone (its own throwaway cluster and Redis, results on stdout):
#   CE_PGPREFIX=/tmp/pg1 bash bench/redis_scale.sh
# or as the "redisscale" section of bench/run.sh (BENCH_SECTIONS=redisscale),
# which records into its results.
#
# Environment: SCALE_REPS (3), SCALE_SECS (3), SCALE_UNRELATED (1000000),
# SCALE_PARTS ("update prefix tpcb").

SCALE_REPS=${SCALE_REPS:-3}
SCALE_SECS=${SCALE_SECS:-3}
SCALE_UNRELATED=${SCALE_UNRELATED:-1000000}
SCALE_PARTS=${SCALE_PARTS:-update prefix tpcb}
SCALE_DB=bench_scale

if [ -z "${BENCH_TSV:-}" ]; then
	# standalone
	set -euo pipefail
	# shellcheck source=test/lib.sh
	. "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"
	ce_install_cleanup_trap
	ce_make_tmp
	ce_start_services --redis
	RP=$CE_REDIS_PORT
	BENCH_RAW=$CE_TMP/bench
	mkdir -p "$BENCH_RAW/logs"
	chmod 777 "$BENCH_RAW" "$BENCH_RAW/logs"
	TOOLS="python3 $CE_ROOT/bench/tools.py"
	BENCH_TSV=$BENCH_RAW/results.tsv
	bench_record() {
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "${7:-}" >>"$BENCH_TSV"
	}
	bench_cmd() { printf '  command: %s\n' "$*"; }
fi

rcli() { "$CE_REDIS_CLI" -h 127.0.0.1 -p "$RP" "$@"; }
ssql() { ce_psql -d "$SCALE_DB" -At "$@"; }

# fills Redis with N keys "PREFIX<i>" (short values) by Lua, 10k per call
scale_fill() {
	local prefix=$1 n=$2 i
	for ((i = 0; i < n; i += 10000)); do
		rcli EVAL "for i = ARGV[2], ARGV[3] do redis.call('SET', ARGV[1] .. i, 'v') end" 0 \
			"$prefix" "$((i + 1))" "$((i + 10000 < n ? i + 10000 : n))" >/dev/null
	done
}

# waits until the key directory serves prefix invalidations of $1 (which
# this removes: call it before loading the keys to remove)
scale_wait_dir() {
	local i
	for i in $(seq 1 300); do
		if ssql -c "SET cache_ext.backend = redis" -c "SET client_min_messages = debug1" \
			-c "SELECT cache_invalidate_prefix('$1')" 2>&1 | grep -q 'listed by the key directory'; then
			return 0
		fi
		sleep 0.1
	done
	ce_warn "the key directory does not serve '$1' after 30 s"
}

median() { awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }'; }

# pgbench latency (ms) of FILE, 1 client: scale_pgbench LOG PGOPTIONS ARGS...
scale_pgbench() {
	local log=$BENCH_RAW/logs/scale-$1.log opts=$2
	shift 2
	ce_as_pg env PGOPTIONS="$opts" "$CE_PGBIN/pgbench" -h 127.0.0.1 -p "$CE_PGPORT" -U postgres \
		-n "$@" "$SCALE_DB" >"$log" 2>&1 || { tail -n 5 "$log" >&2; echo ""; return 0; }
	grep -q 'number of failed transactions: [1-9]' "$log" && ce_warn "pgbench $1 reported failures"
	echo "$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$log") $(sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' "$log")"
}

ce_log "Redis at scale (issue 14 part 1): parts '$SCALE_PARTS', $SCALE_REPS repetitions, $SCALE_SECS s runs"
ce_psql -d postgres -c "DROP DATABASE IF EXISTS $SCALE_DB" -c "CREATE DATABASE $SCALE_DB" >/dev/null
ssql -c "CREATE EXTENSION cache_ext" \
	-c "CREATE TABLE users (user_id int PRIMARY KEY, name text)" \
	-c "INSERT INTO users SELECT g, 'user' || g FROM generate_series(1, 1000) g" \
	-c "SELECT cache_attach('users', 'users:all', 'users:by_id:{user_id}')" >/dev/null
echo "UPDATE users SET name = name WHERE user_id = 7;" >"$BENCH_RAW/update.sql"
chmod 644 "$BENCH_RAW/update.sql"

if [[ " $SCALE_PARTS " == *" update "* ]]; then
	ce_log "one-row UPDATE under cache_attach, Redis store: 0 vs $SCALE_UNRELATED unrelated keys"
	bench_cmd redisscale "PGOPTIONS='-c cache_ext.backend=redis' pgbench -n -M prepared -T $SCALE_SECS -c 1 -f update.sql   -- update.sql: UPDATE users SET name = name WHERE user_id = 7"
	declare -A lat=()
	for rep in $(seq 1 "$SCALE_REPS"); do
		order=(0 "$SCALE_UNRELATED")
		[ $((rep % 2)) = 0 ] && order=("$SCALE_UNRELATED" 0)
		for n in "${order[@]}"; do
			rcli FLUSHALL >/dev/null
			scale_fill app:k "$n"
			scale_wait_dir users:all
			read -r l t <<<"$(scale_pgbench "update-$n-r$rep" "-c cache_ext.backend=redis" -M prepared -T "$SCALE_SECS" -c 1 -f "$BENCH_RAW/update.sql")"
			lat[$n]+="$l "
			bench_record redisscale "update_keys_$n" 1 "$rep" "$l" ms "tps=$t"
			printf '  rep %s  %8s unrelated keys: %8s ms per UPDATE\n' "$rep" "$n" "$l"
		done
	done
	# the SCAN path, for reference: a spelling of the URL the directory does not serve
	read -r l t <<<"$(scale_pgbench "update-scan" "-c cache_ext.backend=redis -c cache_ext.redis_url=redis://localhost:$RP/0" -M prepared -t 3 -c 1 -f "$BENCH_RAW/update.sql")"
	bench_record redisscale "update_keys_${SCALE_UNRELATED}_scan" 1 1 "$l" ms "redis_url spelled with localhost: SCAN"
	# its commit-time repeats may have run out of time: let the worker
	# deliver what they queued before measuring anything else
	for _ in $(seq 1 300); do
		[ "$(ssql -c "SET cache_ext.backend = redis" -c "SELECT invalidations_queued FROM cache_stats()")" = 0 ] && break
		sleep 0.1
	done
	m0=$(echo "${lat[0]}" | tr ' ' '\n' | median)
	m1=$(echo "${lat[$SCALE_UNRELATED]}" | tr ' ' '\n' | median)
	printf '  median: %s ms with 0 keys, %s ms with %s keys: ratio %s (target <= 2); SCAN path with %s keys: %s ms\n' \
		"$m0" "$m1" "$SCALE_UNRELATED" "$(ratio "$m1" "$m0")" "$SCALE_UNRELATED" "$l"
	bench_record redisscale update_ratio 1 1 "$(ratio "$m1" "$m0")" ratio "median $m1 ms with $SCALE_UNRELATED unrelated keys / $m0 ms with none; target <= 2"
fi

if [[ " $SCALE_PARTS " == *" prefix "* ]]; then
	ce_log "prefix removal: 10k keys among 100k, cache_invalidate_prefix('p:') vs the SCAN+UNLINK Lua script"
	bench_cmd redisscale "psql: SET cache_ext.backend = redis; \\timing on; SELECT cache_invalidate_prefix('p:')   -- after one earlier invalidation of p: (the namespace is known)"
	bench_cmd redisscale "EVAL <SCAN 0 MATCH p:* COUNT 1000 + UNLINK, until cursor 0> 0 'p:*'   (bench/tools.py redis-unlink-script)"
	ce_ms=() lua_ms=()
	for rep in $(seq 1 "$SCALE_REPS"); do
		for how in ce lua; do
			rcli FLUSHALL >/dev/null
			[ "$how" = ce ] && scale_wait_dir p:
			scale_fill q: 90000
			scale_fill p: 10000
			if [ "$how" = ce ]; then
				ms=$(ssql -c "SET cache_ext.backend = redis" -c "\\timing on" \
					-c "SELECT cache_invalidate_prefix('p:')" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
				ce_ms+=("$ms")
			else
				read -r ms _ <<<"$($TOOLS redis-unlink-script "$RP" p:)"
				lua_ms+=("$ms")
			fi
			left=$(rcli --scan --pattern 'p:*' | wc -l)
			[ "$left" = 0 ] || ce_warn "prefix removal ($how) left $left p: keys"
			bench_record redisscale "prefix_10k_of_100k_$how" 1 "$rep" "$ms" ms
			printf '  rep %s  %-3s %8s ms\n' "$rep" "$how" "$ms"
		done
	done
	m0=$(printf '%s\n' "${ce_ms[@]}" | median)
	m1=$(printf '%s\n' "${lua_ms[@]}" | median)
	printf '  median: cache_ext %s ms, Lua script %s ms: ratio %s (target <= 1)\n' "$m0" "$m1" "$(ratio "$m0" "$m1")"
	bench_record redisscale prefix_ratio 1 1 "$(ratio "$m0" "$m1")" ratio "cache_ext $m0 ms / Lua SCAN+UNLINK $m1 ms; target <= 1"
fi

if [[ " $SCALE_PARTS " == *" tpcb "* ]]; then
	ce_log "pgbench -b tpcb-like, scale 10: no triggers vs triggers on Redis (10k unrelated keys)"
	ce_as_pg "$CE_PGBIN/pgbench" -h 127.0.0.1 -p "$CE_PGPORT" -U postgres -i -q -s 10 "$SCALE_DB" \
		>"$BENCH_RAW/logs/scale-tpcb-init.log" 2>&1
	ssql -c "VACUUM ANALYZE" >/dev/null
	rcli FLUSHALL >/dev/null
	scale_fill app:session: 10000
	bench_cmd redisscale "pgbench -b tpcb-like -M simple -T $SCALE_SECS -c 1 (scale 10); triggers: cache_attach('pgbench_accounts', 'acct:{aid}'), cache_attach('pgbench_branches', 'branches:') (the server's cache_ext.redis_url)"
	declare -A tps=()
	pair_ratios=()
	attached=0
	for rep in $(seq 1 $((2 * SCALE_REPS))); do
		order=(none redis)
		[ $((rep % 2)) = 0 ] && order=(redis none)
		for v in "${order[@]}"; do
			if [ "$v" = redis ] && [ "$attached" = 0 ]; then
				ssql -c "SELECT cache_attach('pgbench_accounts', 'acct:{aid}')" \
					-c "SELECT cache_attach('pgbench_branches', 'branches:')" >/dev/null
				attached=1
				scale_wait_dir branches:
			elif [ "$v" = none ] && [ "$attached" = 1 ]; then
				ssql -c "SELECT cache_detach('pgbench_accounts')" -c "SELECT cache_detach('pgbench_branches')" >/dev/null
				attached=0
			fi
			ssql -c "CHECKPOINT" >/dev/null
			read -r l t <<<"$(scale_pgbench "tpcb-$v-r$rep" "" -b tpcb-like -M simple -T "$SCALE_SECS" -c 1)"
			tps[$v]+="$t "
			eval "t_$v=\$t"
			bench_record redisscale "tpcb_$v" 1 "$rep" "$t" tps "lat_ms=$l"
			printf '  rep %s  %-5s %10s tps\n' "$rep" "$v" "$t"
		done
		# run back to back, the pair shares the machine's state of the moment
		pair_ratios+=("$(ratio "$t_redis" "$t_none")")
	done
	m0=$(echo "${tps[none]}" | tr ' ' '\n' | median)
	m1=$(echo "${tps[redis]}" | tr ' ' '\n' | median)
	mp=$(printf '%s\n' "${pair_ratios[@]}" | median)
	printf '  median: %s tps without triggers, %s with triggers on Redis: ratio %s; median of the %s back-to-back pairs: %s (%s) (target >= 0.8)\n' \
		"$m0" "$m1" "$(ratio "$m1" "$m0")" "${#pair_ratios[@]}" "$mp" "${pair_ratios[*]}"
	bench_record redisscale tpcb_ratio 1 1 "$mp" ratio "median of back-to-back pair ratios (${pair_ratios[*]}); ratio of medians $(ratio "$m1" "$m0") ($m1 / $m0 tps); target >= 0.8"
fi

rcli FLUSHALL >/dev/null
ce_psql -d postgres -c "DROP DATABASE $SCALE_DB" >/dev/null
