#!/usr/bin/env bash
# The FastAPI example (examples/fastapi) end to end over real HTTP (issue 7).
#
# For each mode of the service -- "redis" (the app's own Redis client, the
# database on the Redis store, triggers from cache_attach) and "sql"
# (cache_fetch on the shared-memory store, no Redis client in the app) --
# set up a database of its own, start uvicorn on a free loopback port and
# run examples/fastapi/e2e.py against it: first GET misses, second hits (the
# Redis key and its TTL, or cache_stats()), PUT through the API, UPDATE /
# INSERT / DELETE with psql, DELETE through the API then 404, /health and
# the typed OpenAPI schema.  Then "hung": the service and its database on a
# Redis of their own, which the test stops with SIGSTOP (it accepts
# connections and never answers): requests are still served from PostgreSQL,
# a write still commits, and once Redis resumes the queued invalidations
# reach it and the service reads the new rows.  Then "hungdb": the service's
# PostgreSQL accepts connections and never answers (a socket that listens
# and is never read): requests that need it get 503 within DB_CONNECT_TIMEOUT
# instead of hanging, /health says so, and values cached in Redis are still
# served.
#
# Uses PGHOST, PGPORT, PGUSER (a superuser) and REDIS_URL or REDIS_PORT, as
# test/run.sh sets them; REDIS_SERVER and REDIS_CLI (default: from PATH);
# FASTAPI_E2E_MODES to run only some of "redis sql hung hungdb"; PYTHON to pick the
# interpreter (examples/fastapi/python.sh).  Cleans up (uvicorn, its databases, its Redis keys)
# even on failure.  Exit status 0 when every check passed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
app_dir=${FASTAPI_EXAMPLE_DIR:-$(cd "$here/../.." && pwd)/examples/fastapi}
export PGUSER=${PGUSER:-postgres}
if [ -z "${REDIS_URL:-}" ] && [ -n "${REDIS_PORT:-}" ]; then
	REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
fi
REDIS_URL=${REDIS_URL:-}
REDIS_CLI=${REDIS_CLI:-redis-cli}
export PYTHONDONTWRITEBYTECODE=1

if [ ! -f "$app_dir/app.py" ]; then
	echo "FAIL: $app_dir/app.py not found (test/run.sh must copy examples/ into its temp dir)"
	exit 1
fi

# PYTHON, else python3 from PATH, else Debian's (installing its packages if missing)
# shellcheck source=../../examples/fastapi/python.sh
. "$app_dir/python.sh"
fastapi_python
echo "ok    python: $PY: $("$PY" -c 'import fastapi, sqlalchemy, asyncpg, redis, httpx; print("fastapi", fastapi.__version__, "sqlalchemy", sqlalchemy.__version__, "asyncpg", asyncpg.__version__, "redis-py", redis.__version__)')"
REDIS_SERVER=${REDIS_SERVER:-redis-server}

work=$(mktemp -d "${CE_TMP:-${TMPDIR:-/tmp}}/fastapi_e2e.XXXXXX")
uv_pid=
hung_pid=
hole_pid=
dbs=()
failed=1

stop_uvicorn() {
	if [ -n "$uv_pid" ]; then
		kill "$uv_pid" 2>/dev/null || true
		wait "$uv_pid" 2>/dev/null || true
		uv_pid=
	fi
}

cleanup() {
	local rc=$? db
	trap - EXIT INT TERM
	stop_uvicorn
	if [ -n "$hung_pid" ]; then
		kill -CONT "$hung_pid" 2>/dev/null || true
		kill "$hung_pid" 2>/dev/null || true
		wait "$hung_pid" 2>/dev/null || true
	fi
	if [ -n "$hole_pid" ]; then
		kill "$hole_pid" 2>/dev/null || true
		wait "$hole_pid" 2>/dev/null || true
	fi
	if [ "$failed" = 1 ] && [ -s "$work/uvicorn.log" ]; then
		echo "---- last 40 lines of the service's log ----"
		tail -n 40 "$work/uvicorn.log"
		echo "---- end ----"
	fi
	for db in "${dbs[@]}"; do
		psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
	done
	if [ -n "$REDIS_URL" ]; then
		"$REDIS_CLI" -u "$REDIS_URL" --scan --pattern 'users:*' 2>/dev/null |
			xargs -r "$REDIS_CLI" -u "$REDIS_URL" del >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# db_url DB SCHEME: asyncpg takes a socket directory as ?host=; the sql mode
# gets the plain postgresql:// form that app.py accepts too
if [[ ${PGHOST:-} == /* ]]; then
	db_url() { echo "$2://$PGUSER@/$1?host=$PGHOST&port=${PGPORT:-5432}"; }
else
	db_url() { echo "$2://$PGUSER@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/$1"; }
fi

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A Redis of the test's own, for the hung case: stopping the shared one
# would stall every other client of it.
start_own_redis() {
	local port i
	port=$(free_port)
	"$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--logfile "$work/redis-hung.log" --dir "$work" >/dev/null 2>&1 &
	hung_pid=$!
	for i in $(seq 1 100); do
		if "$REDIS_CLI" -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
			hung_url=redis://127.0.0.1:$port/0
			return 0
		fi
		sleep 0.1
	done
	echo "FAIL  [hung] $REDIS_SERVER did not start on 127.0.0.1:$port"
	exit 1
}

# A PostgreSQL that accepts connections and never answers, for the hungdb
# case: a socket that listens and is never read.
start_black_hole() {
	local i
	"$PY" -c 'import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
time.sleep(3600)' >"$work/hole.port" &
	hole_pid=$!
	for i in $(seq 1 100); do
		if [ -s "$work/hole.port" ]; then
			hole_port=$(cat "$work/hole.port")
			return 0
		fi
		sleep 0.1
	done
	echo "FAIL  [hungdb] the listening socket did not start"
	exit 1
}

SECONDS=0
for mode in ${FASTAPI_E2E_MODES:-redis sql hung hungdb}; do
	url=$REDIS_URL
	if [ "$mode" = hung ]; then
		start_own_redis
		url=$hung_url
	elif [ "$mode" != sql ] && [ -z "$REDIS_URL" ]; then
		echo "skip  [$mode] no REDIS_URL or REDIS_PORT"
		continue
	fi
	app_mode=$mode scheme=postgresql+asyncpg extra=()
	[ "$mode" != sql ] || scheme=postgresql
	if [ "$mode" = hungdb ]; then
		start_black_hole
		db=users_demo
		database_url=postgresql+asyncpg://$PGUSER@127.0.0.1:$hole_port/$db
		app_mode=redis extra=(DB_CONNECT_TIMEOUT=1)
		echo "ok    [$mode] 127.0.0.1:$hole_port accepts connections and never answers: the service's PostgreSQL"
	else
		db=fastapi_e2e_${mode}_$$
		dbs+=("$db")
		store=shmem
		[ "$mode" = sql ] || store=redis
		bash "$app_dir/setup.sh" "$db" "$store" "$url"
		echo "ok    [$mode] database $db: users table, cache_attach triggers, cache_ext.backend = $store"
		database_url=$(db_url "$db" "$scheme")
		[ "$mode" != hung ] || app_mode=redis
	fi

	port=$(free_port)
	(cd "$app_dir" && exec env CACHE_MODE="$app_mode" DATABASE_URL="$database_url" REDIS_URL="$url" \
		LOG_LEVEL=DEBUG "${extra[@]}" "$PY" -m uvicorn app:app --host 127.0.0.1 --port "$port" --no-access-log) \
		>"$work/uvicorn.log" 2>&1 &
	uv_pid=$!
	for i in $(seq 1 150); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			break
		fi
		if ! kill -0 "$uv_pid" 2>/dev/null || [ "$i" = 150 ]; then
			echo "FAIL  [$mode] uvicorn did not start on 127.0.0.1:$port"
			exit 1
		fi
		sleep 0.1
	done
	echo "ok    [$mode] uvicorn app:app listening on 127.0.0.1:$port (CACHE_MODE=$app_mode, DATABASE_URL=${database_url%%:*}://…)"

	"$PY" "$app_dir/e2e.py" --mode "$mode" --url "http://127.0.0.1:$port" --db "$db" \
		${url:+--redis-url "$url"} ${hung_pid:+--redis-pid "$hung_pid"}

	if [ "$mode" = redis ]; then
		if ! grep -q 'DEBUG users: cache miss users:all' "$work/uvicorn.log" ||
			! grep -q 'DEBUG users: cache hit users:all' "$work/uvicorn.log"; then
			echo "FAIL  [$mode] no 'DEBUG users: cache miss/hit users:all' lines in the service's log (LOG_LEVEL=DEBUG)"
			exit 1
		fi
		echo "ok    [$mode] LOG_LEVEL=DEBUG: the service logged 'cache miss users:all' and 'cache hit users:all'"
	fi
	if [ "$mode" = hung ]; then
		if ! grep -q 'WARNING users: Redis GET users:all failed' "$work/uvicorn.log"; then
			echo "FAIL  [$mode] no 'WARNING users: Redis GET users:all failed' line in the service's log"
			exit 1
		fi
		echo "ok    [$mode] the service logged a WARNING when Redis stopped answering"
	fi
	if [ "$mode" = hungdb ]; then
		if ! grep -q 'WARNING users: PostgreSQL unavailable for GET /users/1' "$work/uvicorn.log"; then
			echo "FAIL  [$mode] no 'WARNING users: PostgreSQL unavailable for GET /users/1' line in the service's log"
			exit 1
		fi
		echo "ok    [$mode] the service logged a WARNING when PostgreSQL did not answer"
	fi
	stop_uvicorn
done
failed=0
echo "fastapi e2e: all checks passed in ${SECONDS}s"
