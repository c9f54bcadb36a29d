"""A short load run of the users service, with cache_ext and without.

    PGHOST=/tmp/pgdev PGPORT=55432 REDIS_URL=redis://127.0.0.1:6379/0 \\
        /usr/bin/python3 examples/fastapi/load.py [--users 1000 --seconds 10 --clients 8]

For each mode -- none (no cache: the baseline), redis (the app's Redis
client, triggers on the Redis store), sql (cache_fetch on the shared-memory
store) -- on a database of its own (fastapi_load_<mode>, dropped at the end):

1. hit vs miss: one client, sequential.  GET /users/{id} for 200 ids, each
   twice (first a miss, then a hit), and 30 times GET /users just after
   cache_delete('users:all') and again right after.
2. mixed load: --clients threads for --seconds: 90% GET /users/{id} (random
   among --users ids), 5% GET /users, 5% PUT /users/{id}; the cache starts
   empty.  What reached PostgreSQL is counted by PostgreSQL itself, after
   uvicorn has stopped (a backend flushes its statistics when it exits):
   transactions of the database (pg_stat_database) = requests that made a
   round trip to PostgreSQL; scans of the users table (pg_stat_user_tables)
   minus 2 per PUT (its SELECT and its UPDATE) = reads that ran the query.

Prints Markdown (RESULTS.md holds one run).  Needs a superuser in PGUSER
(default postgres) and cache_ext preloaded; the redis mode needs REDIS_URL.
"""
import argparse
import os
import platform
import random
import socket
import statistics
import subprocess
import threading
import time

import httpx

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def psql(db, sql):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                          "-U", os.environ.get("PGUSER", "postgres"), "-d", db, "-c", sql],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def db_url(db):
    user, host, port = os.environ.get("PGUSER", "postgres"), os.environ.get("PGHOST", "127.0.0.1"), \
        os.environ.get("PGPORT", "5432")
    if host.startswith("/"):
        return f"postgresql+asyncpg://{user}@/{db}?host={host}&port={port}"
    return f"postgresql+asyncpg://{user}@{host}:{port}/{db}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """uvicorn app:app in one mode, on a free loopback port."""

    def __init__(self, mode, db, redis_url):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, CACHE_MODE=mode, DATABASE_URL=db_url(db), REDIS_URL=redis_url or "",
                   LOG_LEVEL="WARNING", PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen([PY, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                                     "--port", str(self.port), "--no-access-log", "--log-level", "warning"],
                                    cwd=HERE, env=env)
        for _ in range(150):
            try:
                httpx.get(self.url + "/openapi.json", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit(f"uvicorn ({mode}) did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)


def db_counters(db):
    """(transactions, scans of users) as PostgreSQL counted them."""
    xacts = psql(db, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
    scans = psql(db, "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables"
                     " WHERE relname = 'users'")
    return int(xacts), int(scans)


def ms(values):
    return f"{statistics.median(values) * 1000:.2f}" if values else "-"


def hit_vs_miss(svc, db, mode):
    """Sequential first (miss) and second (hit) GETs; returns medians and header mismatches."""
    res = {"one_miss": [], "one_hit": [], "all_miss": [], "all_hit": []}
    wrong = 0
    with httpx.Client(base_url=svc.url, timeout=30) as c:
        for i in range(20):              # warm the connection pools on ids phase 1 does not use
            c.get(f"/users/{1000 + i}")
        for uid in range(1, 201):
            for kind in ("one_miss", "one_hit"):
                t = time.perf_counter()
                r = c.get(f"/users/{uid}")
                res[kind].append(time.perf_counter() - t)
                wrong += mode == "redis" and r.headers["x-cache"] != kind[4:]
        for _ in range(30):
            psql(db, "SELECT cache_delete('users:all')")
            for kind in ("all_miss", "all_hit"):
                t = time.perf_counter()
                r = c.get("/users")
                res[kind].append(time.perf_counter() - t)
                wrong += mode == "redis" and r.headers["x-cache"] != kind[4:]
    return res, wrong


def mixed(svc, nusers, seconds, clients):
    """Read-heavy mix with writes from several threads; returns per-op latencies and counts."""
    deadline = time.perf_counter() + seconds
    results = []

    def worker(seed):
        rnd = random.Random(seed)
        lat = {"get_one": [], "get_all": [], "put": []}
        cache = {}
        with httpx.Client(base_url=svc.url, timeout=30) as c:
            while time.perf_counter() < deadline:
                x, uid = rnd.random(), rnd.randint(1, nusers)
                t = time.perf_counter()
                if x < 0.90:
                    op, r = "get_one", c.get(f"/users/{uid}")
                elif x < 0.95:
                    op, r = "get_all", c.get("/users")
                else:
                    op, r = "put", c.put(f"/users/{uid}", json={"name": f"user {uid} v{rnd.randint(1, 10**6)}",
                                                              "email": f"user{uid}@example.com"})
                lat[op].append(time.perf_counter() - t)
                if r.status_code >= 300:
                    raise SystemExit(f"{op} {uid}: HTTP {r.status_code} {r.text[:200]}")
                h = r.headers.get("x-cache", "-")
                cache[h] = cache.get(h, 0) + (op != "put")
        results.append((lat, cache))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = {k: [v for r in results for v in r[0][k]] for k in ("get_one", "get_all", "put")}
    cache = {}
    for _, c in results:
        for k, v in c.items():
            cache[k] = cache.get(k, 0) + v
    return lat, cache


def run_mode(mode, args):
    db = f"fastapi_load_{mode}"
    store = "redis" if mode == "redis" else "shmem"
    subprocess.run(["bash", os.path.join(HERE, "setup.sh"), db, store, args.redis_url or ""], check=True)
    psql(db, f"""TRUNCATE users RESTART IDENTITY;
                 INSERT INTO users (name, email)
                 SELECT 'user ' || i, 'user' || i || '@example.com' FROM generate_series(1, {args.users}) i;
                 ANALYZE users;""")
    if mode == "none":
        psql(db, "SELECT cache_detach('users')")  # the baseline: no cache_ext at all
    psql(db, "SELECT cache_invalidate_prefix('users:')")

    svc = Service(mode, db, args.redis_url)
    try:
        lat1, wrong = hit_vs_miss(svc, db, mode)
    finally:
        svc.stop()

    psql(db, "SELECT cache_invalidate_prefix('users:')")
    before = db_counters(db)
    svc = Service(mode, db, args.redis_url)
    t0 = time.perf_counter()
    try:
        lat2, cache = mixed(svc, args.users, args.seconds, args.clients)
    finally:
        elapsed = time.perf_counter() - t0
        svc.stop()
    time.sleep(0.5)
    after = db_counters(db)
    if not args.keep:
        psql("postgres", f"DROP DATABASE {db} WITH (FORCE)")
    requests = sum(len(v) for v in lat2.values())
    writes = len(lat2["put"])
    xacts, scans = after[0] - before[0], after[1] - before[1]
    reads_queried = scans - 2 * writes
    return dict(mode=mode, lat1=lat1, wrong=wrong, lat2=lat2, cache=cache, requests=requests,
                rps=requests / elapsed, writes=writes, xacts=xacts, reads_queried=reads_queried)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--modes", default="none,redis,sql")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    p.add_argument("--keep", action="store_true", help="keep the fastapi_load_* databases")
    args = p.parse_args()
    modes = args.modes.split(",")
    if "redis" in modes and not args.redis_url:
        raise SystemExit("the redis mode needs REDIS_URL (or --redis-url)")

    runs = [run_mode(m, args) for m in modes]
    label = {"none": "none (no cache)", "redis": "redis (app's Redis client + triggers)",
             "sql": "sql (cache_fetch, shmem)"}

    print(f"{args.users} users; mixed load: {args.clients} clients x {args.seconds:g} s, "
          f"90% GET /users/{{id}}, 5% GET /users, 5% PUT; one uvicorn worker; "
          f"{platform.node()}, {os.cpu_count()} CPUs\n")
    print("### Hit vs miss (one client, sequential; median ms per HTTP request, end to end)\n")
    print("| mode | GET /users/{id} miss | hit | GET /users (1000 rows) miss | hit | miss/hit (list) |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        l1 = r["lat1"]
        ratio = statistics.median(l1["all_miss"]) / statistics.median(l1["all_hit"])
        print(f"| {label[r['mode']]} | {ms(l1['one_miss'])} | {ms(l1['one_hit'])} | "
              f"{ms(l1['all_miss'])} | {ms(l1['all_hit'])} | {ratio:.1f}x |")
    print("\n### Mixed load\n")
    print("| mode | requests/s | median ms GET /users/{id} | GET /users | PUT | "
          "requests with a PostgreSQL round trip | requests that ran a query on users |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        l2, n = r["lat2"], r["requests"]
        touched = min(r["reads_queried"] + r["writes"], n)
        print(f"| {label[r['mode']]} | {r['rps']:.0f} | {ms(l2['get_one'])} | {ms(l2['get_all'])} | "
              f"{ms(l2['put'])} | {min(r['xacts'], n) / n:.1%} | {touched / n:.1%} |")
    print()
    for r in runs:
        extra = f"; X-Cache of reads: {r['cache']}" if r["mode"] == "redis" else ""
        bad = f"; {r['wrong']} unexpected hit/miss headers in the hit-vs-miss phase" if r["wrong"] else ""
        print(f"- {r['mode']}: {r['requests']} requests ({r['writes']} PUT), {r['xacts']} PostgreSQL "
              f"transactions, {r['reads_queried']} reads ran the query{extra}{bad}")


if __name__ == "__main__":
    main()
