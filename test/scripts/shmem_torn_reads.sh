#!/usr/bin/env bash
# Gets read the shared-memory store without a lock and keep what they read
# only if no writer changed the partition meanwhile (src/store_shmem.c,
# read_unlocked).  Writers here keep replacing a few keys with values of
# other lengths, so that freed blocks are reused at once under readers that
# may still be copying them; every value read must be whole.  Passes when
# no reader saw a torn value and the readers did read values.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pgbench=${PGBIN:+$PGBIN/}pgbench
duration=${STRESS_SECONDS:-8}

psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

export PGOPTIONS="-c cache_ext.backend=shmem"
psql_q <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cache_ext;
DROP TABLE IF EXISTS torn_bad;
CREATE TABLE torn_bad (k int, v text);
SQL
psql_q -c "SELECT cache_reset_stats()" >/dev/null

out=$("$pgbench" -n -c 4 -j 2 -T "$duration" \
	-f "$here/torn/writer.sql@1" -f "$here/torn/reader.sql@1" 2>&1) || {
	echo "$out"
	echo "FAIL: pgbench failed"
	exit 1
}
ops=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
bad=$(psql_q -Atc "SELECT count(*) FROM torn_bad")
hits=$(psql_q -Atc "SELECT hits FROM cache_stats()")
echo "$ops operations, $hits values read, $bad torn"
status=0
if [ "$bad" != 0 ]; then
	psql_q -c "SELECT k, length(v), left(v, 40) FROM torn_bad LIMIT 5"
	status=1
fi
if [ -z "$hits" ] || [ "$hits" -lt 1000 ]; then
	echo "too few values read to tell"
	status=1
fi
psql_q -c "DROP TABLE torn_bad" >/dev/null
[ $status = 0 ] && echo ok || echo FAIL
exit $status
