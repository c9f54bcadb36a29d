"""A short load run of the users service, with cache_ext and without.

    PGHOST=/tmp/pgdev PGPORT=55432 REDIS_URL=redis://127.0.0.1:6379/0 \\
        python3 examples/fastapi/load.py [--users 1000 --seconds 20 --clients 8 --rounds 5]

For each mode -- none (no cache: the baseline), redis (the app's Redis
client, triggers on the Redis store), sql (cache_fetch on the shared-memory
store) -- on a database of its own (fastapi_load_<mode>, dropped at the end),
each with its own uvicorn; the modes take turns (--rounds), so that whatever
else runs on the machine weighs on each of them alike:

1. hit vs miss: one client, sequential.  GET /users/{id} for 200 ids, each
   twice (first a miss, then a hit), and 30 times GET /users just after
   cache_delete('users:all') and again right after.
2. mixed load: --clients threads, --seconds per mode in all: 90% GET /users/{id} (80% of
   them on the first fifth of the --users ids), 5% GET /users, 5% PUT /users/{id}; the cache starts
   empty.  What reached PostgreSQL is counted by PostgreSQL itself, after
   uvicorn has stopped (a backend flushes its statistics when it exits):
   transactions of the database (pg_stat_database) = requests that made a
   round trip to PostgreSQL; scans of the users table (pg_stat_user_tables)
   minus 2 per PUT (its SELECT and its UPDATE) = reads that ran the query.

Prints Markdown (RESULTS.md holds one run).  Needs a superuser in PGUSER
(default postgres) and cache_ext preloaded; the redis mode needs REDIS_URL.
The services run under the same interpreter as load.py (requirements.txt).
"""
import argparse
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time

import httpx

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable  # the services need what load.py needs (requirements.txt)


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


def hit_vs_miss(svc, db, mode, ids, list_rounds, res):
    """Sequential first (miss) and second (hit) GETs, added to res; returns header mismatches."""
    wrong = 0
    with httpx.Client(base_url=svc.url, timeout=30) as c:
        for uid in ids:
            for kind in ("one_miss", "one_hit"):
                t = time.perf_counter()
                r = c.get(f"/users/{uid}")
                res[kind].append(time.perf_counter() - t)
                wrong += mode == "redis" and r.headers["x-cache"] != kind[4:]
        for _ in range(list_rounds):
            psql(db, "SELECT cache_delete('users:all')")
            for kind in ("all_miss", "all_hit"):
                t = time.perf_counter()
                r = c.get("/users")
                res[kind].append(time.perf_counter() - t)
                wrong += mode == "redis" and r.headers["x-cache"] != kind[4:]
    return wrong


def mixed(svc, nusers, seconds, clients, lat, cache):
    """Read-heavy mix with writes from several threads; adds to lat and cache; returns the time."""
    deadline = time.perf_counter() + seconds
    results = []

    def worker(seed):
        rnd = random.Random(seed)
        mine = {"get_one": [], "get_all": [], "put": []}
        seen = {}
        with httpx.Client(base_url=svc.url, timeout=30) as c:
            while time.perf_counter() < deadline:
                x = rnd.random()
                hot = rnd.random() < 0.8  # 80% of requests go to the first 20% of users
                uid = rnd.randint(1, nusers // 5) if hot else rnd.randint(1, nusers)
                t = time.perf_counter()
                if x < 0.90:
                    op, r = "get_one", c.get(f"/users/{uid}")
                elif x < 0.95:
                    op, r = "get_all", c.get("/users")
                else:
                    op, r = "put", c.put(f"/users/{uid}", json={"name": f"user {uid} v{rnd.randint(1, 10**6)}",
                                                              "email": f"user{uid}@example.com"})
                mine[op].append(time.perf_counter() - t)
                if r.status_code >= 300:
                    raise SystemExit(f"{op} {uid}: HTTP {r.status_code} {r.text[:200]}")
                if op != "put":
                    h = r.headers.get("x-cache", "-")
                    seen[h] = seen.get(h, 0) + 1
        results.append((mine, seen))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(random.random(),)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for mine, seen in results:
        for k, v in mine.items():
            lat[k].extend(v)
        for k, v in seen.items():
            cache[k] = cache.get(k, 0) + v
    return time.perf_counter() - t0


def setup_db(mode, args):
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
    return db


def run(args, modes):
    """Both phases, the modes taking turns (rounds), so that other load on the machine
    weighs on each mode alike."""
    dbs = {m: setup_db(m, args) for m in modes}
    runs = {m: dict(mode=m, lat1={k: [] for k in ("one_miss", "one_hit", "all_miss", "all_hit")}, wrong=0,
                    lat2={k: [] for k in ("get_one", "get_all", "put")}, cache={}, elapsed=0.0)
            for m in modes}
    svcs = {m: Service(m, dbs[m], args.redis_url) for m in modes}
    try:
        for m in modes:                        # warm the connection pools on ids phase 1 does not use
            with httpx.Client(base_url=svcs[m].url) as c:
                for i in range(20):
                    c.get(f"/users/{args.users - i}")
        ids = list(range(1, 201))
        for rnd in range(args.rounds):
            for m in modes:
                runs[m]["wrong"] += hit_vs_miss(svcs[m], dbs[m], m, ids[rnd::args.rounds],
                                                30 // args.rounds, runs[m]["lat1"])
    finally:
        for svc in svcs.values():
            svc.stop()

    before = {}
    for m in modes:
        psql(dbs[m], "SELECT cache_invalidate_prefix('users:')")
        before[m] = db_counters(dbs[m])
    svcs = {m: Service(m, dbs[m], args.redis_url) for m in modes}
    try:
        for rnd in range(args.rounds):
            for m in modes:
                r = runs[m]
                r["elapsed"] += mixed(svcs[m], args.users, args.seconds / args.rounds, args.clients,
                                      r["lat2"], r["cache"])
    finally:
        for svc in svcs.values():
            svc.stop()
    time.sleep(0.5)
    for m in modes:
        r, after = runs[m], db_counters(dbs[m])
        r["requests"] = sum(len(v) for v in r["lat2"].values())
        r["writes"] = len(r["lat2"]["put"])
        r["rps"] = r["requests"] / r["elapsed"]
        r["xacts"] = after[0] - before[m][0]
        r["reads_queried"] = after[1] - before[m][1] - 2 * r["writes"]
        if not args.keep:
            psql("postgres", f"DROP DATABASE {dbs[m]} WITH (FORCE)")
    return [runs[m] for m in modes]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5, help="the modes take turns this many times")
    p.add_argument("--modes", default="none,redis,sql")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    p.add_argument("--keep", action="store_true", help="keep the fastapi_load_* databases")
    args = p.parse_args()
    modes = args.modes.split(",")
    if "redis" in modes and not args.redis_url:
        raise SystemExit("the redis mode needs REDIS_URL (or --redis-url)")

    runs = run(args, modes)
    label = {"none": "none (no cache)", "redis": "redis (app's Redis client + triggers)",
             "sql": "sql (cache_fetch, shmem)"}

    print(f"{args.users} users; mixed load: {args.clients} clients x {args.seconds:g} s per mode "
          f"(in {args.rounds} turns), "
          f"90% GET /users/{{id}} (80% on {args.users // 5} hot users), 5% GET /users, 5% PUT "
          f"(the PUTs on the same ids); one uvicorn worker per mode; "
          f"{platform.node()}, {os.cpu_count()} CPUs\n")
    print("### Hit vs miss (one client, sequential; median ms per HTTP request, end to end)\n")
    print(f"| mode | GET /users/{{id}} miss | hit | GET /users ({args.users} rows) miss | hit | miss/hit (list) |")
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
