"""End-to-end checks of the users service over real HTTP (driven by test/scripts/fastapi_e2e.sh).

    e2e.py --mode redis|sql --url http://127.0.0.1:PORT --db DBNAME [--redis-url redis://...]

The service must already run in that mode against DBNAME (set up by setup.sh).
Writes "directly with psql" really go through the psql program (PGHOST,
PGPORT, PGUSER from the environment), so no application code is involved.
Prints one line per check; exits 1 at the first failure.
"""
import argparse
import json
import os
import subprocess
import sys

import httpx
import redis

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


def get(path, status=200, cache=None):
    """GET path; check the status (and X-Cache in redis mode); return the JSON."""
    r = http.get(path)
    check(r.status_code == status, f"GET {path} -> {status}", f"got {r.status_code} {r.text[:200]}")
    if cache and args.mode == "redis":
        check(r.headers.get("x-cache") == cache, f"GET {path} was a cache {cache}",
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
    if args.mode == "redis":
        check(not list(rds.scan_iter("users:*")), "no users:* key in Redis after TRUNCATE")
    elif rds is not None:
        for key in rds.scan_iter("users:*"):  # left by the redis mode's run
            rds.delete(key)


def first_miss_then_hit(path, key, ttl):
    """First GET misses and stores key with its TTL; second GET hits, same body."""
    if args.mode == "redis":
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


def main():
    global args, http, rds
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["redis", "sql"], required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--redis-url", help="the Redis the service (redis mode) and the database share")
    args = p.parse_args()
    http = httpx.Client(base_url=args.url, timeout=10)
    rds = redis.Redis.from_url(args.redis_url, decode_responses=True) if args.redis_url else None

    reset()

    # Cache-aside: a miss, then a hit, with the right TTLs.
    users = first_miss_then_hit("/users", "users:all", 600)
    check(names(users) == {i + 1: s for i, s in enumerate(SEED)}, "GET /users lists the 3 users")
    one = first_miss_then_hit("/users/1", "users:by_id:1", 900)
    check(one == {"id": 1, "name": "Ada", "email": "ada@example.com"}, "GET /users/1 is Ada")
    get("/users/2")  # cache user 2 too: a write to user 1 must leave it alone

    # A write through the API: the app does not touch the cache, the trigger does.
    r = http.put("/users/1", json={"name": "Ada Lovelace", "email": "ada@example.com"})
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
    r = http.delete("/users/3")
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
