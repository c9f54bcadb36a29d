#!/bin/bash
# setup.sh DBNAME STORE [REDIS_URL]
#
# Create database DBNAME if it does not exist, set the cache_ext store its
# sessions use (STORE: redis or shmem; with redis, the Redis at REDIS_URL),
# then create the users table and its triggers (schema.sql).
# Connects with psql as a superuser: PGHOST, PGPORT, PGUSER (default postgres).
set -euo pipefail
db=${1:?usage: setup.sh DBNAME redis|shmem [REDIS_URL]}
store=${2:?usage: setup.sh DBNAME redis|shmem [REDIS_URL]}
redis_url=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
psql() { PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" command psql -X -q -v ON_ERROR_STOP=1 -U "${PGUSER:-postgres}" -v db="$db" "$@"; }

if [ -z "$(psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '${db//\'/\'\'}'")" ]; then
	echo 'CREATE DATABASE :"db";' | psql -d postgres
fi
# Settings of the database, so they apply to every session: the app's, psql's, a cron job's.
echo "ALTER DATABASE :\"db\" SET cache_ext.backend = :'store';" |
	psql -d postgres -v store="$store"
if [ -n "$redis_url" ]; then
	# cache_ext.redis_url may only be set by a superuser (it can hold a password).
	echo "ALTER DATABASE :\"db\" SET cache_ext.redis_url = :'url';" |
		psql -d postgres -v url="$redis_url"
fi
psql -d "$db" -f "$here/schema.sql" >/dev/null
