#!/usr/bin/env bash
# Randomized coherence check (issue 5): writers update rows of a table that
# cache_attach() watches while readers go through cache_fetch and through
# cache_get + cache_set (also from REPEATABLE READ transactions).  A writer records each version once its commit has
# returned; each reader first reads the last such version, then the cached
# one; a cached version older than that is a stale read (the contract's
# promise starts when the commit returns: between the moment the new row is
# visible and that, the commit-time invalidation may still be on its way).
# Runs on both stores; passes when no stale read was seen.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pgbench=${PGBIN:+$PGBIN/}pgbench
duration=${STRESS_SECONDS:-8}
status=0

psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psql_q <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
DROP TABLE IF EXISTS stress_items, stress_done, stress_stale;
CREATE TABLE stress_items (id int PRIMARY KEY, version int NOT NULL);
INSERT INTO stress_items SELECT i, 0 FROM generate_series(1, 20) i;
CREATE TABLE stress_done (id int, version int);
CREATE INDEX ON stress_done (id, version);
CREATE TABLE stress_stale (path text, id int, committed int, cached int);
SELECT cache_attach('stress_items', 'stress:{id}', 'stress_aside:{id}');
SQL

for backend in shmem redis; do
	if [ "$backend" = redis ] && [ -z "${REDIS_PORT:-}" ]; then
		echo "skip redis: no REDIS_PORT"
		continue
	fi
	export PGOPTIONS="-c cache_ext.backend=$backend"
	psql_q -c "TRUNCATE stress_stale" -c "SELECT cache_flush()" >/dev/null
	out=$("$pgbench" -n -c 6 -j 2 -T "$duration" \
		-f "$here/stress/writer.sql@2" \
		-f "$here/stress/fetch_reader.sql@4" \
		-f "$here/stress/aside_reader.sql@3" \
		-f "$here/stress/rr_reader.sql@1" 2>&1) || {
		echo "$out"
		echo "FAIL $backend: pgbench failed"
		status=1
		continue
	}
	ops=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	writes=$(psql_q -Atc "SELECT sum(version) FROM stress_items")
	stale=$(psql_q -Atc "SELECT count(*) FROM stress_stale")
	psql_q -Atc "SELECT 'stats: hits=' || hits || ' misses=' || misses || ' sets=' || sets FROM cache_stats()"
	echo "$backend: $ops operations ($writes committed writes in all so far), ${failed:-0} failed, $stale stale reads"
	if [ "$stale" != 0 ] || [ "${failed:-0}" != 0 ] || [ -z "$ops" ] || [ "$ops" -eq 0 ]; then
		psql_q -c "SELECT * FROM stress_stale LIMIT 10"
		echo "FAIL $backend"
		status=1
	else
		echo "ok $backend"
	fi
done
unset PGOPTIONS
psql_q -c "DROP TABLE stress_items, stress_done, stress_stale" >/dev/null
exit $status
