# bench/near_cache.sh: section "nearcache" of bench/run.sh (sourced by it,
# after the other sections; uses its helpers and services).
#
#   BENCH_SECTIONS=nearcache BENCH_SKIP_BUILD=1 bash bench/run.sh
#
# Restarts PostgreSQL with cache_ext.redis_near_cache = $BENCH_NEAR_SIZE
# (64MB), waits for the worker's tracking connection, reads every k:<i> once
# through the Redis store, then $BENCH_NEAR_ROUNDS rounds (9) of short runs
# ($BENCH_NEAR_SECS, 2 s), the order rotated each round, so that each figure
# is compared with its neighbours while the load of a shared machine drifts:
#   ce_get     pgbench, cache_get of a random k:<i> on the shared-memory store
#   near_get   the same script on the Redis store: near-cache hits
#   rb_get     redis-benchmark -t get -d 200 -r 10000 (200-byte values too)
# then near_mix, 9 cache_get : 1 cache_set on the Redis store (own writes
# void their keys), and the cost of one hit inside one query on each store.
# The near-cache's hit ratio: 1 - (GETs Redis executed) / (cache_get calls),
# from INFO commandstats and cache_stats() around the runs.  Invalidation
# latency: another client (a raw socket) SETs a key the near-cache holds,
# while a session reads it every 0.2 ms in the server (near_bench_wait):
# the time from the SET to the first read that no longer gives the old
# value, $BENCH_NEAR_LAT_N times.  Then the Redis store again without the
# near-cache (a restart), for scale, and back to the configuration before.
# The section writes $BENCH_RAW/nearcache.md, which run.sh appends to the
# results file.

NEAR_SIZE=${BENCH_NEAR_SIZE:-64MB}
NEAR_LAT_N=${BENCH_NEAR_LAT_N:-40}
NEAR_ROUNDS=${BENCH_NEAR_ROUNDS:-9}     # a multiple of 3: each order as often
NEAR_SECS=${BENCH_NEAR_SECS:-2}
if [ "$QUICK" = 1 ]; then
	NEAR_LAT_N=${BENCH_NEAR_LAT_N:-10}
	NEAR_ROUNDS=${BENCH_NEAR_ROUNDS:-3}
	NEAR_SECS=${BENCH_NEAR_SECS:-1}
fi
NEAR_MD=$BENCH_RAW/nearcache.md

# near_restart SIZE: restart with that near-cache size, refill the shmem store
near_restart() {
	echo "cache_ext.redis_near_cache = '$1'" | ce_as_pg tee -a "$CE_PGDATA/postgresql.conf" >/dev/null
	ce_as_pg "$CE_PGBIN/pg_ctl" -D "$CE_PGDATA" -l "$CE_TMP/postgres.log" -w -t 60 restart >/dev/null
	bench_sql -f "$BENCH_OUT/sql/fill_shmem.sql" >/dev/null
}

# GETs Redis has executed (MGET apart)
near_redis_gets() {
	"$CE_REDIS_CLI" -p "$RP" info commandstats |
		sed -n 's/^cmdstat_get:calls=\([0-9]*\),.*/\1/p' | grep . || echo 0
}

# cache_get calls answered on the Redis store (hits + misses)
near_redis_reads() {
	bench_sql -c "SET cache_ext.backend = redis" -c "SELECT hits + misses FROM cache_stats()"
}

near_redis_sql() {
	bench_sql -c "SET cache_ext.backend = redis" "$@"
}

if [ "$REDIS_STORE" != 1 ]; then
	ce_warn "nearcache: the Redis store does not work: section skipped"
else
	ce_log "near-cache: restart with cache_ext.redis_near_cache = $NEAR_SIZE"
	meta "nearcache" "cache_ext.redis_near_cache = '$NEAR_SIZE'; pgbench -M prepared -T $SECS, clients: $CLIENTS, $REPS run(s) each, interleaved"
	near_restart "$NEAR_SIZE"
	near_redis_sql -c "SELECT count(cache_set('k:' || i, bench_v(), 3600)) FROM generate_series(0, 9999) i" >/dev/null

	# the near-cache keeps nothing until the tracking connection is up
	live=0
	for _ in $(seq 1 100); do
		near_redis_sql -c "SELECT cache_get('k:1')" >/dev/null
		g0=$(near_redis_gets)
		near_redis_sql -c "SELECT count(cache_get('k:1')) FROM generate_series(1, 5)" >/dev/null
		[ "$(near_redis_gets)" = "$g0" ] && { live=1; break; }
		sleep 0.1
	done
	[ "$live" = 1 ] || ce_warn "nearcache: hits still reach Redis (no tracking connection?)"
	near_redis_sql -c "SELECT count(cache_get('k:' || i)) FROM generate_series(0, 9999) i" >/dev/null

	bench_cmd nearcache "postgresql.conf: cache_ext.redis_near_cache = '$NEAR_SIZE' (restart); SET cache_ext.backend = redis; SELECT count(cache_get('k:' || i)) FROM generate_series(0, 9999) i -- warm"
	bench_cmd nearcache "PGOPTIONS='' pgbench -h 127.0.0.1 -p \$PGPORT -U postgres -n -M prepared -T $NEAR_SECS -c <c> -j <c> --no-vacuum -f bench/sql/ce_get.sql bench   # ce_get (shmem); $NEAR_ROUNDS rounds of ce_get, near_get, rb_get, the order rotated each round"
	bench_cmd nearcache "PGOPTIONS='-c cache_ext.backend=redis' pgbench ... -f bench/sql/ce_get.sql bench   # near_get"
	bench_cmd nearcache "PGOPTIONS='-c cache_ext.backend=redis' pgbench ... -T $SECS -f bench/sql/ce_get.sql@9 -f bench/sql/ce_set.sql@1 bench   # near_mix, $REPS runs after the rounds"
	bench_cmd nearcache "redis-benchmark -h 127.0.0.1 -p \$REDIS_PORT -t set -d 200 -r 10000 -n 100000 -q   # once: the keys redis-benchmark GETs, 200 bytes like k:<i>"
	bench_cmd nearcache "redis-benchmark -h 127.0.0.1 -p \$REDIS_PORT -t get -d 200 -r 10000 -c <c> -n $((NEAR_SECS * 15000)) --csv   # rb_get"

	# short runs, the order rotated in each round: on a shared machine the
	# load drifts within seconds, so neighbours are compared
	/usr/bin/redis-benchmark -h 127.0.0.1 -p "$RP" -t set -d 200 -r 10000 -n 100000 -q >/dev/null 2>&1
	g_get=0 r_get=0 g_mix=0 r_mix=0
	order=(ce_get near_get rb_get)
	for round in $(seq 1 "$NEAR_ROUNDS"); do
		for c in $CLIENTS; do
			for w in "${order[@]}"; do
				case $w in
				ce_get)
					BENCH_SECTION=nearcache bench_pgbench ce_get shmem "$c" "$round" "$NEAR_SECS" ce_get.sql
					;;
				near_get)
					g0=$(near_redis_gets)
					r0=$(near_redis_reads)
					BENCH_SECTION=nearcache bench_pgbench near_get redis "$c" "$round" "$NEAR_SECS" ce_get.sql
					g_get=$((g_get + $(near_redis_gets) - g0))
					r_get=$((r_get + $(near_redis_reads) - r0))
					;;
				rb_get)
					/usr/bin/redis-benchmark -h 127.0.0.1 -p "$RP" -t get -d 200 -r 10000 \
						-c "$c" -n "$((NEAR_SECS * 15000))" --csv >"$BENCH_RAW/logs/nearcache-redis-benchmark-c$c-r$round.csv" 2>&1
					rps=$(awk -F'"' '$2 == "GET" { print $4 }' "$BENCH_RAW/logs/nearcache-redis-benchmark-c$c-r$round.csv")
					bench_record nearcache rb_get "$c" "$round" "$rps" rps
					printf '  %-22s c=%s rep=%s  %10s rps\n' "redis-benchmark GET" "$c" "$round" "$rps"
					;;
				esac
			done
		done
		order=("${order[@]:1}" "${order[0]}")
	done
	for rep in $(seq 1 "$REPS"); do
		for c in $CLIENTS; do
			g0=$(near_redis_gets)
			r0=$(near_redis_reads)
			BENCH_SECTION=nearcache bench_pgbench near_mix redis "$c" "$rep" "$SECS" ce_get.sql@9 ce_set.sql@1
			g_mix=$((g_mix + $(near_redis_gets) - g0))
			r_mix=$((r_mix + $(near_redis_reads) - r0))
		done
	done
	for v in "get $g_get $r_get" "mix $g_mix $r_mix"; do
		read -r name g r <<<"$v"
		bench_record nearcache "hit_ratio_$name" 0 1 \
			"$(awk -v g="$g" -v r="$r" 'BEGIN { printf "%.4f", (r > 0 ? 1 - g / r : 0) }')" ratio \
			"cache_get calls $r, GETs at Redis $g"
	done

	# the cost of one hit inside one query, where scheduling counts least
	ce_log "near-cache: cost per cache_get hit inside one query"
	q="SELECT count(cache_get('k:' || (i % 10000))) FROM generate_series(1, 200000) i"
	bench_cmd nearcache "in one query, shmem then Redis store + near-cache, $NEAR_ROUNDS times: SELECT bench_ms('$q')"
	for round in $(seq 1 "$NEAR_ROUNDS"); do
		for store in shmem redis; do
			ms=$(bench_sql -c "SET cache_ext.backend = $store" -c "SELECT bench_ms(\$\$$q\$\$)")
			bench_record nearcache "inquery_$store" 1 "$round" "$(awk -v ms="$ms" 'BEGIN { printf "%.1f", ms * 1e6 / 200000 }')" ns/call
		done
	done
	awk -F'\t' '$1 == "nearcache" && $2 ~ /^inquery/ { printf "  %-16s round %s  %8s ns/call\n", $2, $4, $5 }' "$BENCH_TSV"

	# invalidation latency: a write by another Redis client until a read misses
	ce_log "near-cache: invalidation latency ($NEAR_LAT_N writes by another client)"
	bench_sql >/dev/null <<-'EOF'
		CREATE OR REPLACE FUNCTION near_bench_wait(k text, old text, secs float8)
		RETURNS float8 LANGUAGE plpgsql AS $$
		DECLARE
			deadline timestamptz := clock_timestamp() + secs * interval '1 second';
		BEGIN
			LOOP
				IF cache_get(k) IS DISTINCT FROM old THEN
					RETURN extract(epoch FROM clock_timestamp());
				END IF;
				IF clock_timestamp() > deadline THEN
					RETURN NULL;
				END IF;
				PERFORM pg_sleep(0.0002);
			END LOOP;
		END $$;
	EOF
	bench_cmd nearcache "invalidation latency: SELECT near_bench_wait('nl:k', 'old', 5) in one session (cache_get every 0.2 ms until the value changes), SET nl:k new from a raw socket 0.3 s later; latency = first changed read - time before the SET was sent"
	lat_file=$BENCH_RAW/logs/nearcache-latency
	: >"$lat_file"
	for i in $(seq 1 "$NEAR_LAT_N"); do
		near_redis_sql -c "SELECT cache_set('nl:k', 'old', 0)" -c "SELECT cache_get('nl:k')" \
			-c "SELECT cache_get('nl:k')" >/dev/null
		near_redis_sql -c "SELECT near_bench_wait('nl:k', 'old', 5)" >"$lat_file.$i" 2>&1 &
		waiter=$!
		sleep 0.3
		t0=$(python3 - "$RP" <<-'EOF'
			import socket, sys, time
			s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
			t = time.time()
			s.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nnl:k\r\n$3\r\nnew\r\n")
			s.recv(64)
			print("%.6f" % t)
		EOF
		)
		wait "$waiter" || true
		t1=$(tail -n 1 "$lat_file.$i")
		awk -v a="$t0" -v b="$t1" 'BEGIN { if (b != "") printf "%.3f\n", (b - a) * 1000; else print "timeout" }' >>"$lat_file"
	done
	read -r lat_med lat_p90 lat_max lat_n <<<"$(sort -n "$lat_file" | grep -v timeout | awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - - 0"; exit } printf "%s %s %s %d\n", v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.999)], v[NR], NR }')"
	bench_record nearcache inval_latency_median 1 1 "$lat_med" ms "p90 $lat_p90 ms, max $lat_max ms, $lat_n of $NEAR_LAT_N writes seen (others: timeout after 5 s)"
	echo "  invalidation latency: median $lat_med ms, p90 $lat_p90 ms, max $lat_max ms ($lat_n of $NEAR_LAT_N)"
	bench_sql -c "DROP FUNCTION near_bench_wait(text, text, float8)" >/dev/null

	# the Redis store without the near-cache, for scale (not interleaved)
	ce_log "near-cache off: the Redis store's cache_get again"
	near_restart 0
	for rep in $(seq 1 "$REPS"); do
		for c in $CLIENTS; do
			BENCH_SECTION=nearcache bench_pgbench redis_get_nonear redis "$c" "$rep" "$SECS" ce_get.sql
			BENCH_SECTION=nearcache bench_pgbench ce_get_nonear shmem "$c" "$rep" "$SECS" ce_get.sql
		done
	done

	# ---- the report fragment ----
	python3 - "$BENCH_TSV" "$NEAR_MD" "$CLIENTS" <<-'EOF'
		import statistics, sys
		tsv, out, clients = sys.argv[1], sys.argv[2], sys.argv[3].split()
		rows = [l.rstrip("\n").split("\t") for l in open(tsv) if l.startswith("nearcache\t")]
		def byround(name, c):
		    return {r[3]: float(r[4]) for r in rows if r[1] == name and r[2] == c and r[4] not in ("", "-")}
		def med(name, c):
		    v = list(byround(name, c).values())
		    return statistics.median(v) if v else None
		def ratios(a, b, c):
		    x, y = byround(a, c), byround(b, c)
		    return [x[k] / y[k] for k in sorted(x, key=int) if k in y and y[k]]
		def note(name):
		    return next((r[6] for r in rows if r[1] == name), "")
		def f(x, d=0):
		    return "-" if x is None else ("{:,.%df}" % d).format(x)
		def rat(v):
		    return "-" if not v else "**%.2f×** (%s)" % (statistics.median(v), ", ".join("%.2f" % x for x in v))
		w = open(out, "w")
		w.write("\n## Near-cache (cache_ext.redis_near_cache)\n\n")
		w.write("Short runs in rotated order; medians, and the median of the ratios of each round's "
		        "neighbouring runs (every round's ratio in brackets).\n\n")
		w.write("| clients | ce_get (shmem) tps | near_get (Redis store + near-cache) tps | redis-benchmark GET rps | near / shmem | near / redis-benchmark |\n")
		w.write("|---:|---:|---:|---:|---|---|\n")
		for c in clients:
		    w.write("| %s | %s | %s | %s | %s | %s |\n" % (
		        c, f(med("ce_get", c)), f(med("near_get", c)), f(med("rb_get", c)),
		        rat(ratios("near_get", "ce_get", c)), rat(ratios("near_get", "rb_get", c))))
		w.write("\nTargets (issue 14): near-cache hit ≥ 0.9× the shared-memory store's cache_get, "
		        "≥ 1.0× redis-benchmark GET at 1 client.\n\n")
		sh, nr = med("inquery_shmem", "1"), med("inquery_redis", "1")
		w.write("- One hit inside one query (200,000 cache_get, median of the rounds): shmem %s ns, "
		        "Redis store + near-cache %s ns (%s)\n" % (f(sh), f(nr), "-" if not sh or not nr else "%.2f× the time" % (nr / sh)))
		for c in clients:
		    w.write("- %s client(s): near_mix (9 get : 1 set, Redis store + near-cache) %s tps; "
		            "after a restart without the near-cache: Redis store cache_get %s tps, shmem %s tps (not interleaved with the above)\n" % (
		                c, f(med("near_mix", c)), f(med("redis_get_nonear", c)), f(med("ce_get_nonear", c))))
		for name, what in (("hit_ratio_get", "near_get (10k keys, all read)"),
		                   ("hit_ratio_mix", "near_mix (each set voids its key)")):
		    v = [float(r[4]) for r in rows if r[1] == name and r[4]]
		    w.write("- Near-cache hit ratio, %s: %s (%s)\n" % (what, "-" if not v else "%.1f%%" % (100 * v[0]), note(name)))
		v = [float(r[4]) for r in rows if r[1] == "inval_latency_median" and r[4] not in ("", "-")]
		w.write("- Invalidation latency, a SET by another Redis client until a read here misses: median %s ms (%s)\n" % (
		    "-" if not v else "%.2f" % v[0], note("inval_latency_median")))
	EOF
	cat "$NEAR_MD"

	# back to the configuration of the other sections
	ce_as_pg sed -i '/^cache_ext.redis_near_cache = /d' "$CE_PGDATA/postgresql.conf"
	ce_as_pg "$CE_PGBIN/pg_ctl" -D "$CE_PGDATA" -l "$CE_TMP/postgres.log" -w -t 60 restart >/dev/null
	bench_sql -f "$BENCH_OUT/sql/fill_shmem.sql" >/dev/null
fi
