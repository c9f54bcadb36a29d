"""End-to-end checks of the users service over real HTTP (driven by test/scripts/fastapi_e2e.sh).

    e2e.py --mode redis|sql --url http://127.0.0.1:PORT --db DBNAME [--redis-url redis://...]
    e2e.py --mode hung --url ... --db ... --redis-url ... --redis-pid PID
    e2e.py --mode hungdb --url ... --db ... --redis-url ...

The service must already run in that mode against DBNAME (set up by setup.sh).
Writes "directly with psql" really go through the psql program (PGHOST,
PGPORT, PGUSER from the environment), so no application code is involved.

--mode hung: the service runs in redis mode on a Redis of its own (process
PID, shared with the database).  Once the cache is warm, the test stops that
Redis with SIGSTOP: it still accepts connections and never answers.  Every
request must still be answered, from PostgreSQL, and a write must still
commit; once Redis is resumed (SIGCONT), the invalidation the database queued
meanwhile is delivered and the service reads the new rows, not the value it
cached before the hang.

--mode hungdb: the service's DATABASE_URL names a socket that accepts
connections and never answers.  Requests that need PostgreSQL must get 503
within the service's DB_CONNECT_TIMEOUT instead of hanging; /health must say
so; a value cached in Redis must still be served.

Prints one line per check; exits 1 at the first failure.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import redis

# Generous: the service's own timeouts are well under a second; this only
# tells a hung service from a slow machine.
HTTP_TIMEOUT = 10

SEED = [("Ada", "ada@example.com"), ("Grace", "grace@example.com"), ("Edsger", "edsger@example.com")]

args = None
http = None
rds = None


def check(cond, what, detail=""):
    if cond:
        print(f"ok    [{args.mode}] {what}", flush=True)
        return
    print(f"FAIL  [{args.mode}] {what}" + (f": {detail}" if detail else ""), flush=True)
    sys.exit(1)


def psql(sql):
    """Run SQL through the psql program; return its unaligned output."""
    cmd = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
           "-U", os.environ.get("PGUSER", "postgres"), "-d", args.db, "-c", sql]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        check(False, f"psql: {sql}", out.stderr.strip())
    return out.stdout.strip()


def stats():
    hits, misses = psql("SELECT hits, misses FROM cache_stats()").split("|")
    return int(hits), int(misses)


def request(method, path, **kw):
    """One HTTP request; a service that does not answer within HTTP_TIMEOUT fails the check."""
    try:
        return http.request(method, path, **kw)
    except httpx.TimeoutException:
        check(False, f"{method} {path} answered", f"no answer within {HTTP_TIMEOUT}s: the service hangs")


def get(path, status=200, cache=None):
    """GET path; check the status (and X-Cache in redis mode); return the JSON."""
    r = request("GET", path)
    check(r.status_code == status, f"GET {path} -> {status}", f"got {r.status_code} {r.text[:200]}")
    if cache and args.mode in ("redis", "hung", "hungdb"):
        check(r.headers.get("x-cache") == cache, f"GET {path}: X-Cache {cache}",
              f"X-Cache: {r.headers.get('x-cache')}")
    return r.json()


def names(users):
    return {u["id"]: (u["name"], u["email"]) for u in users}


def cached_in_redis(key):
    return rds.exists(key) == 1


def reset():
    """Known rows and an empty cache (TRUNCATE fires the triggers too)."""
    values = ", ".join(f"('{n}', '{e}')" for n, e in SEED)
    psql(f"TRUNCATE users RESTART IDENTITY; INSERT INTO users (name, email) VALUES {values}")
    psql("SELECT cache_invalidate_prefix('users:')")
    check(psql("SELECT count(*) FROM users") == "3", "reset: 3 users, cache empty")
    if args.mode in ("redis", "hung"):
        check(not list(rds.scan_iter("users:*")), "no users:* key in Redis after TRUNCATE")
    elif rds is not None:
        for key in rds.scan_iter("users:*"):  # left by the redis mode's run
            rds.delete(key)


def first_miss_then_hit(path, key, ttl):
    """First GET misses and stores key with its TTL; second GET hits, same body."""
    if args.mode in ("redis", "hung"):
        check(not cached_in_redis(key), f"{key} not in Redis yet")
        body = get(path, cache="miss")
        check(cached_in_redis(key), f"{key} now in Redis")
        left = rds.ttl(key)
        check(ttl - 10 <= left <= ttl, f"{key} Redis TTL ~{ttl}s", f"TTL {left}")
        check(json.loads(rds.get(key)) == body, f"{key} in Redis holds the response body")
        again = get(path, cache="hit")
    else:
        h0, m0 = stats()
        body = get(path)
        h1, m1 = stats()
        check((h1 - h0, m1 - m0) == (0, 1), f"first GET {path}: cache_stats() misses +1, hits +0",
              f"hits +{h1 - h0}, misses +{m1 - m0}")
        again = get(path)
        h2, m2 = stats()
        check((h2 - h1, m2 - m1) == (1, 0), f"second GET {path}: cache_stats() hits +1, misses +0",
              f"hits +{h2 - h1}, misses +{m2 - m1}")
        left = int(psql(f"SELECT cache_ttl('{key}')") or -2)
        check(ttl - 10 <= left <= ttl, f"{key} cache_ttl() ~{ttl}s", f"TTL {left}")
        if rds is not None:
            check(not cached_in_redis(key), f"{key} is not in Redis (shared-memory store)")
    check(again == body, f"second GET {path} returns the same data")
    return body


def health(status, redis_state, http_status=200):
    r = request("GET", "/health")
    check(r.status_code == http_status, f"GET /health -> {http_status}", f"got {r.status_code} {r.text[:200]}")
    body = r.json()
    check(body.get("status") == status and body.get("database") == "ok" and body.get("redis") == redis_state,
          f"/health says status {status}, database ok, redis {redis_state}", str(body))


def typed_api():
    """The OpenAPI schema (what /docs shows) types every response."""
    spec = request("GET", "/openapi.json").json()

    def schema(path, method, status):
        return json.dumps(spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"])

    check("#/components/schemas/UserOut" in schema("/users/{user_id}", "get", "200")
          and "#/components/schemas/UserOut" in schema("/users", "get", "200")
          and "#/components/schemas/UserOut" in schema("/users", "post", "201")
          and "#/components/schemas/Health" in schema("/health", "get", "200"),
          "OpenAPI: GET/POST /users, GET /users/{id} and /health have typed response models")


def queued():
    """Redis invalidations waiting in this server's queue (the count is server-wide)."""
    return int(psql("SET cache_ext.backend = shmem; SELECT invalidations_queued FROM cache_stats()"))


def hung_redis():
    """Redis accepts connections and never answers: the service answers from PostgreSQL."""
    first_miss_then_hit("/users", "users:all", 600)
    get("/users/1", cache="miss")
    health("ok", "ok")

    os.kill(args.redis_pid, signal.SIGSTOP)
    print(f"      [{args.mode}] kill -STOP {args.redis_pid}: Redis accepts connections and never answers", flush=True)
    try:
        t0 = time.monotonic()
        users = get("/users", cache="error")
        took = time.monotonic() - t0
        check(names(users) == {i + 1: s for i, s in enumerate(SEED)},
              f"GET /users served from PostgreSQL while Redis hangs (took {took:.2f}s)")
        check(get("/users/2", cache="error")["name"] == "Grace", "GET /users/2 served from PostgreSQL")
        health("degraded", "unavailable")

        # A write still commits: the database queues its Redis invalidations.
        r = request("PUT", "/users/1", json={"name": "Ada Lovelace", "email": "ada@example.com"})
        check(r.status_code == 200, "PUT /users/1 -> 200 while Redis hangs", f"got {r.status_code} {r.text[:200]}")
        check(queued() > 0, "the database queued the invalidations it could not deliver")
        check(get("/users/1", cache="error")["name"] == "Ada Lovelace",
              "GET /users/1 while Redis hangs: the new name, from PostgreSQL")
    finally:
        os.kill(args.redis_pid, signal.SIGCONT)
    print(f"      [{args.mode}] kill -CONT {args.redis_pid}", flush=True)

    # The queue drains by itself (the worker retries about once a second).
    deadline = time.monotonic() + 30
    while queued() > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    check(queued() == 0, "the queued invalidations were delivered once Redis answered")
    check(not cached_in_redis("users:all") and not cached_in_redis("users:by_id:1"),
          "the values cached before the hang are gone from Redis")
    # and the service uses Redis again once its pause after the failure is over
    deadline = time.monotonic() + 30
    while True:
        r = request("GET", "/users")
        if r.headers.get("x-cache") != "error" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check(r.headers.get("x-cache") == "miss" and r.json()[0]["name"] == "Ada Lovelace",
          "after Redis came back: GET /users misses and shows the new name",
          f"X-Cache {r.headers.get('x-cache')}, {r.text[:200]}")
    check(get("/users", cache="hit")[0]["name"] == "Ada Lovelace", "and the next GET /users is a hit")
    health("ok", "ok")


def hung_database():
    """PostgreSQL accepts connections and never answers: 503s, not hangs; Redis hits still served."""
    rds.delete("users:by_id:1", "users:all")
    t0 = time.monotonic()
    r = request("GET", "/users/1")
    took = time.monotonic() - t0
    check(r.status_code == 503 and r.json() == {"detail": "database unavailable"},
          f"GET /users/1 (a miss) -> 503 database unavailable (took {took:.2f}s)",
          f"got {r.status_code} {r.text[:200]}")
    r = request("PUT", "/users/1", json={"name": "Ada Lovelace", "email": "ada@example.com"})
    check(r.status_code == 503, "PUT /users/1 -> 503", f"got {r.status_code} {r.text[:200]}")
    r = request("GET", "/health")
    body = r.json()
    check(r.status_code == 503 and body.get("status") == "unavailable" and body.get("database") == "unavailable"
          and body.get("redis") == "ok", "GET /health -> 503, database unavailable, redis ok",
          f"got {r.status_code} {r.text[:200]}")
    rds.set("users:by_id:1", json.dumps({"id": 1, "name": "Ada", "email": "ada@example.com"}), ex=60)
    check(get("/users/1", cache="hit")["name"] == "Ada", "a user cached in Redis is still served")
    rds.delete("users:by_id:1")


def main():
    global args, http, rds
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["redis", "sql", "hung", "hungdb"], required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--redis-url", help="the Redis the service (redis mode) and the database share")
    p.add_argument("--redis-pid", type=int, help="(hung) the process of that Redis, to stop and resume")
    args = p.parse_args()
    if args.mode == "hung" and not (args.redis_url and args.redis_pid):
        p.error("--mode hung needs --redis-url and --redis-pid")
    http = httpx.Client(base_url=args.url, timeout=HTTP_TIMEOUT)
    # the test's own client gets timeouts too: it must never wait on the stopped Redis
    rds = redis.Redis.from_url(args.redis_url, decode_responses=True,
                               socket_timeout=5, socket_connect_timeout=5) if args.redis_url else None

    if args.mode == "hungdb":
        hung_database()
        print(f"all checks passed [{args.mode}]", flush=True)
        return
    reset()
    if args.mode == "hung":
        hung_redis()
        print(f"all checks passed [{args.mode}]", flush=True)
        return
    health("ok", "ok" if args.mode == "redis" else "not used")
    typed_api()

    # Cache-aside: a miss, then a hit, with the right TTLs.
    users = first_miss_then_hit("/users", "users:all", 600)
    check(names(users) == {i + 1: s for i, s in enumerate(SEED)}, "GET /users lists the 3 users")
    one = first_miss_then_hit("/users/1", "users:by_id:1", 900)
    check(one == {"id": 1, "name": "Ada", "email": "ada@example.com"}, "GET /users/1 is Ada")
    get("/users/2")  # cache user 2 too: a write to user 1 must leave it alone

    # A write through the API: the app does not touch the cache, the trigger does.
    r = request("PUT", "/users/1", json={"name": "Ada Lovelace", "email": "ada@example.com"})
    check(r.status_code == 200, "PUT /users/1 -> 200", f"got {r.status_code} {r.text[:200]}")
    if args.mode == "redis":
        check(not cached_in_redis("users:all") and not cached_in_redis("users:by_id:1"),
              "PUT: the trigger removed users:all and users:by_id:1 from Redis")
        check(cached_in_redis("users:by_id:2"), "PUT: users:by_id:2 is still cached (exact invalidation)")
    else:
        check(psql("SELECT cache_ttl('users:all') IS NULL AND cache_ttl('users:by_id:1') IS NULL"
                   " AND cache_ttl('users:by_id:2') IS NOT NULL") == "t",
              "PUT: users:all and users:by_id:1 gone, users:by_id:2 still cached")
    check(get("/users/1", cache="miss")["name"] == "Ada Lovelace", "GET /users/1 after PUT: new name")
    check(names(get("/users", cache="miss"))[1][0] == "Ada Lovelace", "GET /users after PUT: new name")
    check(get("/users/1", cache="hit")["name"] == "Ada Lovelace", "GET /users/1 again: cached new name")

    # A write with psql, no application code at all.
    psql("UPDATE users SET email = 'grace@navy.mil' WHERE user_id = 2")
    print(f"      [{args.mode}] psql: UPDATE users SET email = 'grace@navy.mil' WHERE user_id = 2", flush=True)
    check(get("/users/2", cache="miss")["email"] == "grace@navy.mil", "GET /users/2 after psql UPDATE: new email")
    check(names(get("/users"))[2][1] == "grace@navy.mil", "GET /users after psql UPDATE: new email")
    psql("INSERT INTO users (name, email) VALUES ('Barbara', 'barbara@example.com')")
    print(f"      [{args.mode}] psql: INSERT INTO users ... 'Barbara'", flush=True)
    check(names(get("/users", cache="miss")).get(4, ("",))[0] == "Barbara", "GET /users after psql INSERT lists Barbara")

    # A DELETE through the API, then 404 (also once the 404 itself is cached).
    get("/users/3")
    r = request("DELETE", "/users/3")
    check(r.status_code == 204, "DELETE /users/3 -> 204", f"got {r.status_code} {r.text[:200]}")
    get("/users/3", status=404, cache="miss")
    get("/users/3", status=404, cache="hit")
    check(3 not in names(get("/users")), "GET /users after DELETE: user 3 gone")

    # And the same for a DELETE made with psql.
    psql("DELETE FROM users WHERE user_id = 4")
    print(f"      [{args.mode}] psql: DELETE FROM users WHERE user_id = 4", flush=True)
    get("/users/4", status=404)
    check(sorted(names(get("/users"))) == [1, 2], "GET /users after psql DELETE: users 1 and 2 left")
    print(f"all checks passed [{args.mode}]", flush=True)


if __name__ == "__main__":
    main()
