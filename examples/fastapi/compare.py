"""Two versions of app.py side by side: hit and miss latency in redis mode.

    git show 07f07df:examples/fastapi/app.py > /tmp/before/app.py
    PGHOST=/tmp/pgdev PGPORT=55432 REDIS_URL=redis://127.0.0.1:6379/0 \\
        python3 examples/fastapi/compare.py /tmp/before [AFTER_DIR] [--rounds 8]

Each directory holds an app.py (AFTER_DIR defaults to this one).  Both run
under uvicorn in redis mode on one database (cmp_apps: 1000 users, dropped
at the end) and one Redis; one client sends sequential requests, the apps
taking turns (--rounds, the order alternating), so that other load on the
machine weighs on both alike.  Prints the median ms of a hit on one user, a
miss and a hit on the 1000-user list, and the ratio after/before.  Needs a
superuser in PGUSER (default postgres) and cache_ext preloaded.
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
DB = "cmp_apps"


def psql(db, sql):
    return subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                           "-U", os.environ.get("PGUSER", "postgres"), "-d", db, "-c", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def db_url():
    user, host, port = os.environ.get("PGUSER", "postgres"), os.environ.get("PGHOST", "127.0.0.1"), \
        os.environ.get("PGPORT", "5432")
    if host.startswith("/"):
        return f"postgresql+asyncpg://{user}@/{DB}?host={host}&port={port}"
    return f"postgresql+asyncpg://{user}@{host}:{port}/{DB}"


def start(directory, redis_url):
    port = free_port()
    env = dict(os.environ, CACHE_MODE="redis", DATABASE_URL=db_url(), REDIS_URL=redis_url,
               LOG_LEVEL="WARNING", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--no-access-log", "--log-level", "warning"],
                            cwd=directory, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url + "/openapi.json", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"uvicorn in {directory} did not start")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before")
    p.add_argument("after", nargs="?", default=HERE)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = p.parse_args()
    if not args.redis_url:
        raise SystemExit("needs REDIS_URL (or --redis-url)")

    subprocess.run(["bash", os.path.join(HERE, "setup.sh"), DB, "redis", args.redis_url], check=True)
    psql(DB, "TRUNCATE users RESTART IDENTITY; INSERT INTO users (name, email)"
             " SELECT 'user ' || i, 'user' || i || '@example.com' FROM generate_series(1, 1000) i")
    rds = redis.Redis.from_url(args.redis_url, socket_timeout=5)
    apps = {}
    try:
        for name, directory in (("before", args.before), ("after", args.after)):
            apps[name] = start(directory, args.redis_url)
        res = {n: {"one_hit": [], "list_miss": [], "list_hit": []} for n in apps}
        clients = {n: httpx.Client(base_url=url, timeout=30) for n, (_, url) in apps.items()}
        for c in clients.values():
            for i in range(1, 101):                    # warm: pools, and users:by_id:1..100 cached
                c.get(f"/users/{i}")
        for rnd in range(args.rounds):
            order = list(clients.items())
            for n, c in order if rnd % 2 == 0 else order[::-1]:
                for i in range(1, 101):
                    t = time.perf_counter()
                    c.get(f"/users/{i}")
                    res[n]["one_hit"].append(time.perf_counter() - t)
                for _ in range(8):
                    rds.delete("users:all")
                    t = time.perf_counter()
                    c.get("/users")
                    res[n]["list_miss"].append(time.perf_counter() - t)
                for _ in range(30):
                    t = time.perf_counter()
                    r = c.get("/users")
                    res[n]["list_hit"].append(time.perf_counter() - t)
                    if r.headers.get("x-cache") != "hit":
                        raise SystemExit(f"{n}: GET /users was not a hit: {r.headers.get('x-cache')}")
    finally:
        for proc, _ in apps.values():
            proc.terminate()
            proc.wait(timeout=20)
        psql("postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        for key in rds.scan_iter("users:*"):
            rds.delete(key)

    print(f"before: {args.before}/app.py; after: {args.after}/app.py; {args.rounds} rounds\n")
    print("| median ms | before | after | after ÷ before |\n|---|---:|---:|---:|")
    for k, what in (("one_hit", "GET /users/{id}, hit"), ("list_miss", "GET /users (1000 rows), miss"),
                    ("list_hit", "GET /users (1000 rows), hit")):
        b, a = statistics.median(res["before"][k]) * 1000, statistics.median(res["after"][k]) * 1000
        print(f"| {what} | {b:.2f} | {a:.2f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
