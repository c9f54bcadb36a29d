#!/usr/bin/env python3
"""Small helpers for bench/run.sh (python3 standard library only).

  tools.py redis-load PORT PREFIX FIRST LAST VALUE_LEN TTL
      SET PREFIX<i> for i in FIRST..LAST, pipelined (TTL 0: none)
  tools.py redis-unlink-script PORT PREFIX
      SCAN MATCH PREFIX* + UNLINK in one server-side Lua script (EVAL);
      prints "<ms> <removed> <start_us> <end_us>"
  tools.py redis-unlink-client PORT PREFIX
      the same from the client: SCAN COUNT 1000, UNLINK each batch
  tools.py redis-mem PORT            INFO memory used_memory, in bytes
  tools.py redis-probe PORT SECONDS OUT
      one client doing GET q:<random> back to back; writes
      "<end_epoch_us> <latency_us>" per request to OUT
  tools.py mc-stats PORT             memcached "bytes curr_items"
  tools.py zipf-gen N S LEN SEED OUT
      LEN keys drawn from Zipf(S) over 1..N (P(k) ~ k^-S, the distribution
      of pgbench's random_zipfian(1, N, S)), one per line
  tools.py lru FILE CAPACITY         exact LRU over the keys of FILE;
      prints "hits total hits_second_half total_second_half"
  tools.py redis-slowlog PORT reset|longest   Redis's own record of its
      longest single command since the reset (ms, command, count logged)
  tools.py redis-cmdstats PORT OUT   INFO commandstats to OUT
      ("<command> <calls> <usec>" per line)
  tools.py redis-cmddelta BEFORE AFTER TXNS
      the commands Redis ran between two redis-cmdstats files, per
      transaction: "SCAN 10.0 (31 µs each); DEL 2.0 (2 µs each)", or "none"
  tools.py stall T0_US T1_US FILE... per-request latencies from pgbench
      --log files (or redis-probe, bench_reader output): the longest request that
      overlaps [T0, T1] and the longest outside it (ms), the number of
      requests overlapping it and how many of them took over 1 ms, and the
      share of requests over 1 ms at other times
"""
import bisect
import collections
import itertools
import random
import socket
import sys
import time


class Resp:
    """A minimal RESP2 client over TCP."""

    def __init__(self, port, host="127.0.0.1"):
        self.s = socket.create_connection((host, int(port)))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)

    def call(self, *args):
        self.s.sendall(self.encode(*args))
        return self.read()

    def pipeline(self, cmds, batch=1000):
        for i in range(0, len(cmds), batch):
            chunk = cmds[i:i + batch]
            self.s.sendall(b"".join(self.encode(*c) for c in chunk))
            for _ in chunk:
                self.read()


def redis_load(port, prefix, first, last, vlen, ttl):
    r = Resp(port)
    val = ("v" * int(vlen)).encode()
    cmds = []
    for i in range(int(first), int(last) + 1):
        if int(ttl) > 0:
            cmds.append((b"SET", "%s%d" % (prefix, i), val, b"EX", ttl))
        else:
            cmds.append((b"SET", "%s%d" % (prefix, i), val))
        if len(cmds) >= 10000:
            r.pipeline(cmds)
            cmds = []
    r.pipeline(cmds)


UNLINK_LUA = """
local cursor = "0"
local n = 0
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  if #r[2] > 0 then
    n = n + redis.call('UNLINK', unpack(r[2]))
  end
until cursor == "0"
return n
"""


def glob_escape(prefix):
    out = []
    for ch in prefix:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out) + "*"


def redis_unlink_script(port, prefix):
    r = Resp(port)
    w0 = time.time()
    t0 = time.perf_counter()
    n = r.call("EVAL", UNLINK_LUA, 0, glob_escape(prefix))
    ms = (time.perf_counter() - t0) * 1000
    print("%.3f %d %d %d" % (ms, n, w0 * 1e6, time.time() * 1e6))


def redis_unlink_client(port, prefix):
    r = Resp(port)
    pat = glob_escape(prefix)
    w0 = time.time()
    t0 = time.perf_counter()
    cursor, n = b"0", 0
    while True:
        cursor, keys = r.call("SCAN", cursor, "MATCH", pat, "COUNT", 1000)
        if keys:
            n += r.call("UNLINK", *keys)
        if cursor == b"0":
            break
    ms = (time.perf_counter() - t0) * 1000
    print("%.3f %d %d %d" % (ms, n, w0 * 1e6, time.time() * 1e6))


def redis_mem(port):
    info = Resp(port).call("INFO", "memory").decode()
    for line in info.splitlines():
        if line.startswith("used_memory:"):
            print(line.split(":", 1)[1].strip())


def redis_slowlog(port, what):
    """reset: log every command of 100 us or more from now on; longest:
    print the longest logged command's milliseconds, name and how many
    were logged (Redis serves nothing else while a command runs, so this
    is the longest any reader could have waited on Redis itself)."""
    r = Resp(port)
    if what == "reset":
        r.call("CONFIG", "SET", "slowlog-log-slower-than", 100)
        r.call("CONFIG", "SET", "slowlog-max-len", 100000)
        r.call("SLOWLOG", "RESET")
        return
    entries = r.call("SLOWLOG", "GET", -1)
    if not entries:
        print("0.000 none 0")
        return
    top = max(entries, key=lambda e: e[2])
    print("%.3f %s %d" % (top[2] / 1000.0, top[3][0].decode(), len(entries)))


def redis_cmdstats(port, out):
    info = Resp(port).call("INFO", "commandstats").decode()
    with open(out, "w") as f:
        for line in info.splitlines():
            # cmdstat_get:calls=2,usec=15,usec_per_call=7.50,...
            if not line.startswith("cmdstat_"):
                continue
            name, _, rest = line[len("cmdstat_"):].partition(":")
            kv = dict(x.split("=", 1) for x in rest.split(","))
            f.write("%s %s %s\n" % (name.upper(), kv["calls"], kv["usec"]))


def redis_cmddelta(before, after, txns):
    def load(path):
        out = {}
        for line in open(path):
            name, calls, usec = line.split()
            out[name] = (int(calls), int(usec))
        return out
    b, a = load(before), load(after)
    txns = float(txns) or 1.0
    parts = []
    for name, (calls, usec) in sorted(a.items(), key=lambda kv: -kv[1][0]):
        c0, u0 = b.get(name, (0, 0))
        n = calls - c0
        # the INFO of redis-cmdstats itself
        if name == "INFO" or n <= 0:
            continue
        parts.append("%s %.1f (%.0f µs each)" % (name, n / txns, (usec - u0) / n))
    print("; ".join(parts) if parts else "none")


def redis_probe(port, seconds, out):
    r = Resp(port)
    end = time.time() + float(seconds)
    rows = []
    rnd = random.Random(1)
    while True:
        k = "q:%d" % rnd.randint(1, 80000)
        t0 = time.perf_counter()
        r.call("GET", k)
        t1 = time.perf_counter()
        now = time.time()
        rows.append("%d %d\n" % (now * 1e6, (t1 - t0) * 1e6))
        if now >= end:
            break
    with open(out, "w") as f:
        f.writelines(rows)


def mc_stats(port):
    s = socket.create_connection(("127.0.0.1", int(port)))
    s.sendall(b"stats\r\n")
    buf = b""
    while not buf.endswith(b"END\r\n"):
        buf += s.recv(65536)
    st = {}
    for line in buf.decode().splitlines():
        p = line.split()
        if len(p) == 3 and p[0] == "STAT":
            st[p[1]] = p[2]
    print(st.get("bytes"), st.get("curr_items"))


def zipf_gen(n, s, length, seed, out):
    n, s, length = int(n), float(s), int(length)
    cum = list(itertools.accumulate(k ** -s for k in range(1, n + 1)))
    total = cum[-1]
    rnd = random.Random(int(seed))
    with open(out, "w") as f:
        for _ in range(length):
            k = bisect.bisect_left(cum, rnd.random() * total) + 1
            f.write("%d\n" % min(k, n))


def lru(path, capacity):
    capacity = int(capacity)
    keys = open(path).read().split()
    half = len(keys) // 2
    od = collections.OrderedDict()
    hits = hits2 = 0
    for i, k in enumerate(keys):
        if k in od:
            od.move_to_end(k)
            hits += 1
            if i >= half:
                hits2 += 1
        else:
            od[k] = True
            if len(od) > capacity:
                od.popitem(last=False)
    print(hits, len(keys), hits2, len(keys) - half)


def stall(t0, t1, *files):
    t0, t1 = int(t0), int(t1)
    inside, outside, n = 0, 0, 0
    slow_in, n_out, slow_out = 0, 0, 0
    total = None
    for path in files:
        for line in open(path):
            p = line.split()
            if len(p) == 2 and int(p[0]) == 0:
                # bench_reader() lists only its slow gets, then "0 <gets made>"
                total = int(p[1])
                continue
            if len(p) == 2:             # redis-probe, bench_reader: end_us latency_us
                end, lat = int(p[0]), int(p[1])
            elif len(p) >= 6:           # pgbench --log
                lat = int(p[2])
                end = int(p[4]) * 1000000 + int(p[5])
            else:
                continue
            start = end - lat
            if start <= t1 and end >= t0:
                inside = max(inside, lat)
                n += 1
                slow_in += lat > 1000
            else:
                outside = max(outside, lat)
                n_out += 1
                slow_out += lat > 1000
    if total is not None:
        n_out = total - n
    # longest inside, longest outside, requests inside (bench_reader: those
    # of 50 us or more), of them over 1 ms, share of requests over 1 ms
    # outside (the machine's own noise)
    print("%.3f %.3f %d %d %.5f" % (inside / 1000.0, outside / 1000.0, n, slow_in,
                                    slow_out / n_out if n_out else 0.0))


CMDS = {
    "redis-load": redis_load,
    "redis-unlink-script": redis_unlink_script,
    "redis-unlink-client": redis_unlink_client,
    "redis-mem": redis_mem,
    "redis-probe": redis_probe,
    "redis-slowlog": redis_slowlog,
    "redis-cmdstats": redis_cmdstats,
    "redis-cmddelta": redis_cmddelta,
    "mc-stats": mc_stats,
    "zipf-gen": zipf_gen,
    "lru": lru,
    "stall": stall,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in CMDS:
        sys.exit(__doc__)
    CMDS[sys.argv[1]](*sys.argv[2:])
