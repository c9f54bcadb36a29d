#!/usr/bin/env bash
# Run the users service on cache_ext:  bash examples/fastapi/run.sh
#
# Without PGPORT: installs what is missing (Debian packages), builds and
# installs cache_ext, starts a throwaway PostgreSQL (cache_ext preloaded)
# and a throwaway Redis, all removed when you stop the service (Ctrl-C).
# With PGHOST/PGPORT (and PGUSER, a superuser; default postgres): uses that
# server, which must preload cache_ext; REDIS_URL then names the Redis to
# share (a throwaway redis-server is started if it is not set).
#
#   CACHE_MODE  redis (default) | sql | none
#   DB          database to create/use (default users_demo)
#   PORT        HTTP port on 127.0.0.1 (default 8000)
#   LOG_LEVEL   the app's (default DEBUG here: one line per cache hit or miss)
#   PYTHON      the interpreter (default: python3 from PATH if it has the
#               packages of requirements.txt, else Debian's; see python.sh)
# and the app's own settings (REDIS_TTL, REDIS_SOCKET_TIMEOUT, ...: app.py).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CACHE_MODE=${CACHE_MODE:-redis}
DB=${DB:-users_demo}
PORT=${PORT:-8000}
export LOG_LEVEL=${LOG_LEVEL:-DEBUG}
export PGUSER=${PGUSER:-postgres} PYTHONDONTWRITEBYTECODE=1

# shellcheck source=../../test/lib.sh
. "$root/test/lib.sh" # ce_deps, ce_start_services, ce_cleanup, ce_free_port...

# shellcheck source=python.sh
. "$here/python.sh"
fastapi_python # sets PY

redis_pid=
cleanup() {
	local rc=$?
	[ -z "$redis_pid" ] || kill "$redis_pid" 2>/dev/null || true
	ce_cleanup # stops the throwaway PostgreSQL and Redis, if we started them
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${PGPORT:-}" ]; then
	if [ "${CE_SKIP_BUILD:-0}" != 1 ]; then
		ce_deps
		ce_build_install
	fi
	ce_start_services --redis
	export PGHOST=$CE_PGHOST PGPORT=$CE_PGPORT
	REDIS_URL=redis://127.0.0.1:$CE_REDIS_PORT/0
elif [ -z "${REDIS_URL:-}" ] && [ "$CACHE_MODE" = redis ]; then
	port=$(ce_free_port 63800)
	ce_log "starting redis-server on 127.0.0.1:$port"
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--logfile /dev/null >/dev/null &
	redis_pid=$!
	REDIS_URL=redis://127.0.0.1:$port/0
	sleep 0.3
fi
REDIS_URL=${REDIS_URL:-}

store=shmem
[ "$CACHE_MODE" != redis ] || store=redis
ce_log "database $DB: users table, cache_attach triggers, cache_ext.backend = $store"
bash "$here/setup.sh" "$DB" "$store" "$REDIS_URL"

if [[ ${PGHOST:-} == /* ]]; then
	DATABASE_URL="postgresql+asyncpg://$PGUSER@/$DB?host=$PGHOST&port=$PGPORT"
else
	DATABASE_URL="postgresql+asyncpg://$PGUSER@${PGHOST:-127.0.0.1}:$PGPORT/$DB"
fi
# What a second shell needs for the README's commands, as one line to paste.
conn="PGUSER=$PGUSER PGDATABASE=$DB PGPORT=$PGPORT"
[ -z "${PGHOST:-}" ] || conn="PGHOST=$PGHOST $conn"
[ -z "$REDIS_URL" ] || conn="$conn REDIS_URL=$REDIS_URL"
case $CACHE_MODE in
redis) hint='the log says "cache miss", then "cache hit"' ;;
sql) hint='psql -c "SELECT hits, misses FROM cache_stats()" counts them' ;;
*) hint='no cache: both read the table' ;;
esac
cat <<EOF

== users service, CACHE_MODE=$CACHE_MODE, on http://127.0.0.1:$PORT  (Ctrl-C stops everything)
   In another shell:
   export $conn
   curl -s localhost:$PORT/users                  # twice: $hint
   curl -s localhost:$PORT/health
   curl -s -X PUT localhost:$PORT/users/1 -H 'content-type: application/json' \\
        -d '{"name": "Ada Lovelace", "email": "ada@example.com"}'
   psql -c "UPDATE users SET name = 'Grace Hopper' WHERE user_id = 2"
EOF
[ -z "$REDIS_URL" ] || echo "   redis-cli -u \"\$REDIS_URL\" --scan --pattern 'users:*'"
echo

cd "$here"
env CACHE_MODE="$CACHE_MODE" DATABASE_URL="$DATABASE_URL" REDIS_URL="$REDIS_URL" \
	"$PY" -m uvicorn app:app --host 127.0.0.1 --port "$PORT"
