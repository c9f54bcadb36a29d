#!/usr/bin/env python3
"""Write the markdown results of one bench/run.sh run.

usage: report.py RAW_DIR > results.md

RAW_DIR holds results.tsv (section, name, clients, rep, value, unit, note),
commands.tsv (section, command) and meta.tsv (key, value).
"""
import collections
import statistics
import sys

raw = sys.argv[1]

rows = []
for line in open(raw + "/results.tsv"):
    p = line.rstrip("\n").split("\t")
    if len(p) < 7:
        p += [""] * (7 - len(p))
    rows.append(p)
meta = collections.OrderedDict()
for line in open(raw + "/meta.tsv"):
    k, _, v = line.rstrip("\n").partition("\t")
    meta[k] = v
cmds = collections.OrderedDict()
for line in open(raw + "/commands.tsv"):
    k, _, v = line.rstrip("\n").partition("\t")
    cmds.setdefault(k, [])
    if v not in cmds[k]:
        cmds[k].append(v)


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def values(section, name, clients=None):
    out = []
    for sec, n, c, rep, v, unit, note in rows:
        if sec == section and n == name and (clients is None or c == str(clients)):
            x = num(v)
            if x is not None:
                out.append(x)
    return out


def med(section, name, clients=None):
    v = values(section, name, clients)
    return statistics.median(v) if v else None


def note(section, name, clients=None):
    for sec, n, c, rep, v, unit, nt in rows:
        if sec == section and n == name and (clients is None or c == str(clients)):
            return nt
    return ""


def fmt(x, digits=0):
    if x is None:
        return "pending"
    if digits == 0:
        return "{:,.0f}".format(x)
    return "{:,.{}f}".format(x, digits)


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "–"
    return "{:.{}f}×".format(a / b, digits)


clients = sorted({int(r[2]) for r in rows if r[0] in ("pgbench", "malloc")}) or [1, 2]
reps = max([int(r[3]) for r in rows if r[0] in ("pgbench", "malloc")] or [0])
redis_ok = meta.get("redis store", "").startswith("works")

LABELS = collections.OrderedDict([
    ("select1", "floor: `SELECT 1`"),
    ("pk", "no cache: primary-key lookup in `users`"),
    ("list_nocache", "no cache: \"list users\" (json_agg of 1000 of 100k, ~110 kB)"),
    ("floor_list", "floor for the page: the same 110 kB as a constant"),
    ("u_get", "UNLOGGED table: get (hit)"),
    ("u_set", "UNLOGGED table: set (upsert)"),
    ("u_mix", "UNLOGGED table: 90% get / 10% set"),
    ("u_list", "UNLOGGED table: get the 110 kB page"),
    ("mc_get", "pgmemcache: `memcache_get` (hit)"),
    ("mc_set", "pgmemcache: `memcache_set`"),
    ("mc_mix", "pgmemcache: 90/10"),
    ("mc_list", "pgmemcache: get the 110 kB page"),
    ("ce_get", "cache_ext shmem: `cache_get` (hit)"),
    ("ce_set", "cache_ext shmem: `cache_set`"),
    ("ce_mix", "cache_ext shmem: 90/10"),
    ("ce_list", "cache_ext shmem: `cache_get` of the 110 kB page"),
    ("ce_fetch", "cache_ext shmem: `cache_fetch` hit (110 kB, returns jsonb)"),
    ("ce_zipf", "cache_ext shmem, 8MB: Zipf stream, get + set on miss"),
    ("cer_get", "cache_ext redis: `cache_get` (hit)"),
    ("cer_set", "cache_ext redis: `cache_set`"),
    ("cer_mix", "cache_ext redis: 90/10"),
    ("cer_list", "cache_ext redis: `cache_get` of the 110 kB page"),
    ("rb_get", "redis-benchmark GET, 200 B (requests/s)"),
    ("rb_set", "redis-benchmark SET, 200 B (requests/s)"),
])

out = []
w = out.append
w("# cache_ext benchmark — %s" % meta.get("date", "?"))
w("")
if meta.get("quick") == "1":
    w("**Quick smoke run (BENCH_QUICK=1): short runs, one repetition — not for conclusions.**")
    w("")
w("Everything below comes from one run of `make bench` (bench/run.sh) on one machine, all systems")
w("side by side on the same data. Absolute rates on this machine swing up to 2× between runs:")
w("read the **ratios**, which come from runs interleaved in the same minutes.")
w("")
ran = set(meta.get("sections", meta.get("all sections", "")).split())
issue6_ran = bool(ran & {"pgbench", "malloc", "inquery", "memory", "invalidate", "zipf"}) or not ran
if meta.get("sections") and set(meta["sections"].split()) != set(meta.get("all sections", "").split()):
    if issue6_ran:
        w("**Partial run: only these sections ran: %s.** Targets measured elsewhere read \"pending\"." % meta["sections"])
    else:
        w("**Partial run: only these sections ran: %s.** The Issue 6 targets (measured by the other sections) are left out." % meta["sections"])
    w("")

# ---- targets ----
targets = []


def holds(ok, a, b, cond):
    """ok and cond; None (not measured) once a figure is missing, unless
    another client count has already missed."""
    if ok is False:
        return False
    if ok is None or a is None or b is None:
        return None
    return ok and cond(a, b)


def target(text, measured, ok):
    targets.append((text, measured, "pending" if ok is None else ("**met**" if ok else "**MISSED**")))


floor1 = med("pgbench", "select1", 1)
for c in clients:
    pass
g1 = med("pgbench", "ce_get", 1)
target("shmem `cache_get` ≥ 0.95× `SELECT 1` at 1 client",
       "%s tps vs %s = %s" % (fmt(g1), fmt(floor1), ratio(g1, floor1)),
       None if g1 is None or floor1 is None else g1 >= 0.95 * floor1)
for alt, lim, lab in (("u_get", 1.3, "UNLOGGED-table get"), ("mc_get", 2.0, "pgmemcache get")):
    parts, ok = [], True
    for c in clients:
        a, b = med("pgbench", "ce_get", c), med("pgbench", alt, c)
        parts.append("%d client%s: %s" % (c, "s" if c > 1 else "", ratio(a, b)))
        ok = holds(ok, a, b, lambda x, y: x >= lim * y)
    target("shmem `cache_get` ≥ %.1f× %s at every client count" % (lim, lab), "; ".join(parts), ok)

em, bi, cg, ug = (med("inquery", n) for n in ("empty", "builtin", "ce_get", "u_get"))
if None not in (em, bi, cg, ug):
    bn, cn, un = bi - em, cg - em, ug - em
    target("in one query: a hit ≤ 200 ns net of the empty loop", "%.0f ns" % cn, cn <= 200)
    target("in one query: ≤ 2× the builtin's net", "%.0f vs %.0f ns = %s" % (cn, bn, ratio(cn, bn)), cn <= 2 * bn)
    target("in one query: ≤ 1/10 of the UNLOGGED lookup's net", "%.0f vs %.0f ns = 1/%.0f" % (cn, un, un / cn if cn > 0 else 0), cn * 10 <= un)
else:
    target("in one query: hit ≤ 200 ns net, ≤ 2× builtin, ≤ 1/10 UNLOGGED", "not measured", None)

parts, ok = [], True
for c in clients:
    a, f, b = med("pgbench", "ce_list", c), med("pgbench", "ce_fetch", c), med("pgbench", "u_list", c)
    parts.append("%d client%s: `cache_get` %s, `cache_fetch` %s" % (c, "s" if c > 1 else "", ratio(a, b), ratio(f, b)))
    ok = holds(ok, a, b, lambda x, y: x >= 2 * y)
fl = med("pgbench", "floor_list", 1)
if fl is not None and med("pgbench", "u_list", 1):
    parts.append("shipping the same 110 kB as a constant runs at only %s the UNLOGGED table's rate at 1 client" % ratio(fl, med("pgbench", "u_list", 1)))
pf, pc, pu = (med("inquery", n) for n in ("page_floor", "ce_page", "u_page"))
if None not in (pf, pc, pu):
    parts.append("in the server, net of copying it: cache_ext %.1f µs vs UNLOGGED %.1f µs per page (%s)" % (
        (pc - pf) / 1000, (pu - pf) / 1000, ratio(pu - pf, pc - pf, 1)))
tuned = []
for c in clients:
    a, b, f = med("malloc", "ce_list", c), med("malloc", "u_list", c), med("malloc", "floor_list", c)
    if a is not None and b is not None:
        tuned.append("%d client%s: `cache_get` %s (the constant: %s)" % (c, "s" if c > 1 else "", ratio(a, b), ratio(f, b)))
if tuned:
    parts.append("with every backend's malloc tuned (see below): " + ", ".join(tuned))
target("110 kB page from cache_ext ≥ 2× the UNLOGGED table's rate", "; ".join(parts), ok)

if redis_ok:
    parts, ok = [], True
    for c in clients:
        a, b = med("pgbench", "cer_get", c), med("pgbench", "mc_get", c)
        parts.append("%d client%s: %s" % (c, "s" if c > 1 else "", ratio(a, b)))
        ok = holds(ok, a, b, lambda x, y: x >= y)
    target("Redis store `cache_get` ≥ pgmemcache's rate", "; ".join(parts), ok)
    a, b = med("pgbench", "cer_get", 1), med("pgbench", "rb_get", 1)
    if a and b:
        target("Redis store time per request ≤ 1.5× redis-benchmark GET at 1 client",
               "%.1f µs vs %.1f µs = %s" % (1e6 / a, 1e6 / b, ratio(b, a)), b / a <= 1.5)
else:
    target("Redis store `cache_get` ≥ pgmemcache; ≤ 1.5× redis-benchmark per request", "Redis store not built yet", None)

case = "10k/100k"


def stall_ms(v, nt):
    """bench_reader lists only gets of 50 us or more: none means under that"""
    if v is not None and v == 0 and "50 µs or more overlapping: 0" in nt:
        return "< 0.05"
    return fmt(v, 2)


cs, ud, rs, cr = (med("invalidate", n, case) for n in ("ce_shmem", "unlogged", "redis_script", "ce_redis"))
st_s, st_r = med("invalidate_stall", "ce_shmem", case), med("invalidate_stall", "ce_redis", case)
if cs is not None and ud is not None:
    target("invalidate 10k of 100k: shmem no slower than UNLOGGED `DELETE`",
           "%.1f ms vs %.1f ms (%s)" % (cs, ud, ratio(cs, ud)), cs <= ud)
    nt = note("invalidate_stall", "ce_shmem", case)
    target("… with no concurrent reader stalled over 1 ms (shmem)",
           "longest reader get during it: %s ms (%s); longest lock hold %s ms, again without the reader: %s" % (
               stall_ms(st_s, nt), nt.split(";")[0], fmt(med("invalidate_lock", "ce_shmem", case), 3),
               note("invalidate_lock_again", "ce_shmem", case).split(": ", 1)[-1]),
           st_s is not None and st_s <= 1.0)
if redis_ok and cr is not None and rs is not None:
    target("invalidate 10k of 100k: Redis store no slower than the SCAN+UNLINK script",
           "%.1f ms vs %.1f ms (%s)" % (cr, rs, ratio(cr, rs)), cr <= rs)
    rc = med("invalidate_redis_cmd", "ce_redis", case)
    target("… with no concurrent reader stalled over 1 ms (Redis store)",
           "longest reader get during it: %s ms (%s); longest single Redis command (SLOWLOG), what any Redis client may have waited on: %s ms (%s)" % (
               stall_ms(st_r, note("invalidate_stall", "ce_redis", case)),
               note("invalidate_stall", "ce_redis", case).split(";")[0], fmt(rc, 3),
               note("invalidate_redis_cmd", "ce_redis", case)),
           st_r is not None and st_r <= 1.0)
elif not redis_ok:
    target("invalidate 10k of 100k on the Redis store", "Redis store not built yet", None)

zc, zl = med("zipf", "ce_shmem_hit_ratio"), med("zipf", "lru_hit_ratio")
if zc is not None:
    target("Zipf hit ratio ≥ an exact LRU of the same number of entries",
           "%.4f vs %.4f" % (zc, zl), zc >= zl)

if issue6_ran:
    w("## Issue 6 targets")
    w("")
    w("| target | measured (same run) | |")
    w("|---|---|---|")
    for t, m, s in targets:
        w("| %s | %s | %s |" % (t, m, s))
    w("")

# ---- the write path: targets ----
wr_clients = sorted({int(r[2]) for r in rows if r[0] == "writes"})
WR_LABELS = collections.OrderedDict([
    ("tpcb_none", "no triggers"),
    ("tpcb_shmem", "triggers, shared memory only (`redis_url = ''`)"),
    ("tpcb_redis", "triggers, shared memory + Redis (10k unrelated keys)"),
])


def per_rep_ratios(a, b, c):
    """the ratio a/b of each repetition (the two ran minutes apart at most)"""
    va, vb = {}, {}
    for sec, n, cc, rep, v, unit, nt in rows:
        if sec == "writes" and cc == str(c) and num(v) is not None:
            if n == a:
                va[rep] = num(v)
            elif n == b:
                vb[rep] = num(v)
    return [va[r] / vb[r] for r in sorted(va, key=int) if r in vb and vb[r]]


if wr_clients:
    wt = []
    for n, lim, text in (("tpcb_shmem", 0.95, "TPC-B-like with triggers, shared memory ≥ 0.95× without"),
                         ("tpcb_redis", 0.8, "TPC-B-like with triggers, shared memory + Redis ≥ 0.8× without (another issue's target)")):
        # the verdict: the median of each repetition's own ratio (the two ran
        # side by side), at 1 client; the ratio of the medians next to it
        rr = per_rep_ratios(n, "tpcb_none", 1)
        r = statistics.median(rr) if rr else None
        a, b = med("writes", n, 1), med("writes", "tpcb_none", 1)
        parts = ["1 client: %s (median of %d runs' own ratios: %s); medians %s vs %s tps = %s" % (
            "–" if r is None else "%.3f×" % r, len(rr), " ".join("%.2f" % x for x in rr), fmt(a), fmt(b), ratio(a, b, 3))]
        for c in wr_clients:
            if c != 1:
                rc = per_rep_ratios(n, "tpcb_none", c)
                parts.append("%d clients (not part of the target): %s" % (
                    c, "–" if not rc else "%.3f×" % statistics.median(rc)))
        wt.append((text, "; ".join(parts),
                   "pending" if r is None else ("**met**" if r >= lim else "**MISSED**")))
    w("## Write-path targets")
    w("")
    w("| target | measured (same run) | |")
    w("|---|---|---|")
    for t, m, s in wt:
        w("| %s | %s | %s |" % (t, m, s))
    w("")

# ---- pgbench ----
if floor1 is not None:
    w("## pgbench: transactions per second (median of %d runs)" % reps)
    w("")
    w("`-M prepared`, fixed duration, one statement per transaction; keys `k:0`..`k:9999`, values of")
    w("200 bytes, every get a hit. `× floor` is the ratio to `SELECT 1` at the same client count.")
    w("")
    hdr = "| workload |" + "".join(" %d client%s | × floor |" % (c, "s" if c > 1 else "") for c in clients)
    w(hdr)
    w("|---|" + "---:|---:|" * len(clients))
    names = [n for n in LABELS if values("pgbench", n)]
    if not redis_ok:
        names += ["cer_get", "cer_set", "cer_mix", "cer_list"]
    for n in names:
        cells = []
        for c in clients:
            v = med("pgbench", n, c)
            cells.append(" %s | %s |" % (fmt(v), ratio(v, med("pgbench", "select1", c))))
        w("| %s |%s" % (LABELS.get(n, n), "".join(cells)))
    w("")
    w("Every run (tps): " + "; ".join(
        "%s c=%s: %s" % (n, c, "/".join(fmt(x) for x in values("pgbench", n, c)))
        for n in names for c in clients if values("pgbench", n, c)) + ".")
    w("")

    w("## cache_ext against each alternative (ratio of rates, same client count)")
    w("")
    w("| operation | clients | cache_ext shmem | ÷ UNLOGGED | ÷ pgmemcache | cache_ext redis | ÷ UNLOGGED | ÷ pgmemcache | ÷ redis-benchmark |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for op, ce, cer, u, mc, rb in (("get", "ce_get", "cer_get", "u_get", "mc_get", "rb_get"),
                                   ("set", "ce_set", "cer_set", "u_set", "mc_set", "rb_set"),
                                   ("90/10", "ce_mix", "cer_mix", "u_mix", "mc_mix", None),
                                   ("110 kB page", "ce_list", "cer_list", "u_list", "mc_list", None),
                                   ("110 kB page, `cache_fetch`", "ce_fetch", None, "u_list", "mc_list", None)):
        for c in clients:
            a = med("pgbench", ce, c)
            r = med("pgbench", cer, c) if cer else None
            uu, mm = med("pgbench", u, c), med("pgbench", mc, c)
            bb = med("pgbench", rb, c) if rb else None
            w("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
                op, c, fmt(a), ratio(a, uu), ratio(a, mm),
                fmt(r) if cer else "–", ratio(r, uu) if cer else "–", ratio(r, mm) if cer else "–",
                ratio(r, bb) if (cer and rb) else "–"))
    w("")
    lp = med("pgbench", "list_nocache", 1)
    w("The uncached \"list users\" query runs at %s tps at 1 client; the cached page: `cache_get` %s, `cache_fetch` %s, UNLOGGED %s of it." % (
        fmt(lp), ratio(med("pgbench", "ce_list", 1), lp, 1), ratio(med("pgbench", "ce_fetch", 1), lp, 1),
        ratio(med("pgbench", "u_list", 1), lp, 1)))
    w("")

# ---- the page with glibc's malloc tuned ----
large = [n for n in ("floor_list", "u_list", "mc_list", "ce_list", "ce_fetch", "cer_list") if values("malloc", n)]
if large:
    w("## The 110 kB page with glibc's malloc tuned (median of %d runs)" % reps)
    w("")
    w("The same workloads on the same data after `%s pg_ctl restart` (README, \"Large values\"):" % meta.get("malloc tuned", "GLIBC_TUNABLES=…"))
    w("freed blocks of a few hundred kB then stay in the backend instead of going back to the kernel and")
    w("being faulted in again on the next statement. \"default\" is the same workload in the main table.")
    w("")
    w("| workload | clients | default (tps) | tuned (tps) | tuned ÷ default | tuned ÷ UNLOGGED tuned |")
    w("|---|---:|---:|---:|---:|---:|")
    for n in large:
        for c in clients:
            d, t = med("pgbench", n, c), med("malloc", n, c)
            w("| %s | %d | %s | %s | %s | %s |" % (LABELS.get(n, n), c, fmt(d), fmt(t), ratio(t, d),
                                                ratio(t, med("malloc", "u_list", c))))
    w("")
    w("Every run (tps): " + "; ".join(
        "%s c=%s: %s" % (n, c, "/".join(fmt(x) for x in values("malloc", n, c)))
        for n in large for c in clients if values("malloc", n, c)) + ".")
    w("")

# ---- in-query ----
if em is not None:
    w("## Per-call cost inside one query (ns per row, median of rounds)")
    w("")
    w("`SELECT count(f('k:' || (i % 10000))) FROM generate_series(1, N) i`, all hits, one session, `work_mem = 256MB`;")
    w("net = ns/row minus the empty loop's ns/row.")
    w("")
    w("| variant | rows | ns/row | net ns/call | net ÷ builtin's net | UNLOGGED's net ÷ this |")
    w("|---|---:|---:|---:|---:|---:|")
    il = collections.OrderedDict([("empty", "empty loop `count(i)`"), ("builtin", "builtin `length('k:' || …)`"),
                                  ("ce_get", "cache_ext shmem `cache_get`"), ("u_get", "UNLOGGED table, scalar subquery"),
                                  ("mc_get", "pgmemcache `memcache_get`"), ("cer_get", "cache_ext redis `cache_get`"),
                                  ("ce_fetch", "cache_ext shmem `cache_fetch` hit, `SELECT 1 AS a`"),
                                  ("ce_fetch_t", "cache_ext shmem `cache_fetch` hit, a one-table query")])
    for n, lab in il.items():
        v = med("inquery", n)
        if v is None:
            if n == "cer_get" and not redis_ok:
                w("| %s | | pending | | | |" % lab)
            continue
        nt = note("inquery", n)
        nrows = nt.split()[0].split("=")[1] if nt.startswith("rows=") else ""
        net = v - em
        w("| %s | %s | %s | %s | %s | %s |" % (lab, fmt(num(nrows)), fmt(v, 1), "–" if n == "empty" else fmt(net, 1),
                                          "–" if n == "empty" else ratio(net, bi - em, 1),
                                          "–" if n in ("empty",) else ratio(ug - em, net, 1)))
    w("")
    pf, pc, pu = (med("inquery", n) for n in ("page_floor", "ce_page", "u_page"))
    if None not in (pf, pc, pu):
        w("The 110 kB \"list users\" page, one per row: `sum(octet_length(x || ''))`, where the floor's x is")
        w("a value already in memory (so the floor is the cost of copying 110 kB), then x fetched per row;")
        w("net = µs/row minus the floor's.")
        w("")
        w("| variant | rows | µs/row | net µs/page | UNLOGGED's net ÷ this |")
        w("|---|---:|---:|---:|---:|")
        for n, lab, v in (("page_floor", "floor: a copy of the page already in memory", pf),
                          ("ce_page", "cache_ext shmem `cache_get`", pc),
                          ("u_page", "UNLOGGED table (TOASTed, pglz), scalar subquery", pu)):
            nt = note("inquery", n)
            nrows = nt.split()[0].split("=")[1] if nt.startswith("rows=") else ""
            w("| %s | %s | %s | %s | %s |" % (lab, fmt(num(nrows)), fmt(v / 1000, 1),
                                            "–" if n == "page_floor" else fmt((v - pf) / 1000, 1),
                                            "–" if n == "page_floor" else ratio(pu - pf, v - pf, 1)))
        w("")

# ---- memory ----
mem = [r for r in rows if r[0] == "memory"]
if mem:
    base = med("memory", "ce_shmem")
    w("## Memory per cached entry (10k entries, 200-byte values, TTL 1 h)")
    w("")
    w("| system | bytes/entry | ÷ cache_ext shmem | how |")
    w("|---|---:|---:|---|")
    for n, lab in (("ce_shmem", "cache_ext shmem"), ("redis", "Redis (also the Redis store's cost)"),
                   ("memcached", "memcached"), ("unlogged", "UNLOGGED table")):
        v = med("memory", n)
        if v is not None:
            w("| %s | %s | %s | %s |" % (lab, fmt(v), ratio(v, base), note("memory", n)))
    w("")

# ---- invalidation ----
inv = [r for r in rows if r[0] == "invalidate"]
if inv:
    w("## Prefix invalidation (keys `p:<i>` among `q:<i>`, 20-byte values)")
    w("")
    w("Time of the call as the client sees it (psql `\\timing`, commit included; Redis: the client's")
    w("round trip). \"Reader\": back-to-back gets of `q:` keys during the removal, from a loop inside the")
    w("server (`bench_reader()` in bench/sql/setup.sql: `cache_get`, or a primary-key lookup in the")
    w("UNLOGGED table), or for the Redis-only rows from one raw Redis client; its longest get that")
    w("overlapped the removal, and its longest at other times in the same run (the machine's own noise).")
    w("Lock hold: the shmem store's DEBUG2 line \"longest partition lock hold during bulk removal\".")
    w("Redis command: the longest single command in Redis's SLOWLOG during the removal (Redis serves no")
    w("other client meanwhile, so no reader can wait on Redis itself for longer).")
    w("")
    w("| removed / cached | system | time (ms) | ÷ UNLOGGED | ÷ Redis script | reader's longest during (ms) | reader's longest otherwise (ms) | longest lock hold / Redis command (ms) |")
    w("|---|---|---:|---:|---:|---:|---:|---:|")
    cases = []
    for r in inv:
        if r[2] not in cases:
            cases.append(r[2])
    for cs_ in cases:
        u = med("invalidate", "unlogged", cs_)
        rsc = med("invalidate", "redis_script", cs_)
        for n, lab in (("ce_shmem", "cache_ext shmem"), ("ce_redis", "cache_ext redis"), ("unlogged", "UNLOGGED `DELETE … LIKE 'p:%'`"),
                       ("redis_script", "Redis SCAN+UNLINK Lua script"), ("redis_client", "Redis SCAN+UNLINK from the client")):
            v = med("invalidate", n, cs_)
            if v is None:
                if n == "ce_redis" and not redis_ok:
                    w("| %s | %s | pending | | | | | |" % (cs_, lab))
                continue
            stall = med("invalidate_stall", n, cs_)
            nt = note("invalidate_stall", n, cs_)
            other = nt.rsplit(":", 1)[1].strip().split()[0] if ":" in nt else ""
            slow = nt.split("over 1 ms: ")[1].split(";")[0] if "over 1 ms: " in nt else "?"
            share = nt.split("share over 1 ms at other times: ")[1].split(";")[0] if "at other times: " in nt else "?"
            hold = med("invalidate_lock", n, cs_) if n == "ce_shmem" else None
            again = note("invalidate_lock_again", n, cs_) if n == "ce_shmem" else ""
            again = again.split(": ", 1)[1] if ": " in again else ""
            rcmd = med("invalidate_redis_cmd", n, cs_)
            if hold is not None:
                last = "lock %s; again without the reader: %s" % (fmt(hold, 3), again)
            elif rcmd is not None:
                last = "Redis %s (%s)" % (fmt(rcmd, 3), note("invalidate_redis_cmd", n, cs_).split(";")[0])
            else:
                last = "–" if n != "ce_shmem" else "?"
            w("| %s | %s | %s | %s | %s | %s (%s over 1 ms) | %s (%.2f%% over 1 ms) | %s |" % (
                cs_, lab, fmt(v, 1), ratio(v, u), ratio(v, rsc), stall_ms(stall, nt), slow, other,
                100 * (num(share) or 0), last))
    hold_notes = [note("invalidate_lock", "ce_shmem", c) for c in cases]
    w("")
    w("Entries cached in the shmem store at each case: " + "; ".join(
        "%s: %s" % (c, h.split(":")[-1].strip()) for c, h in zip(cases, hold_notes)) + ".")
    w("")

# ---- zipf ----
if zc is not None:
    w("## Zipf stream larger than the cache")
    w("")
    w("`cache_ext.shmem_size = 8MB` (the smallest), keys `z:1..N` drawn from Zipf(s) (pgbench's `random_zipfian`")
    w("distribution), 200-byte values, a get and on a miss a set. The same recorded stream is replayed through")
    w("cache_ext (one session) and through an exact LRU simulator (bench/tools.py lru) holding as many entries")
    w("as cache_ext holds when full.")
    w("")
    w("| | hit ratio, whole stream | second half (warm) | note |")
    w("|---|---:|---:|---|")
    for n, lab in (("ce_shmem_hit_ratio", "cache_ext shmem (CLOCK)"), ("lru_hit_ratio", "exact LRU, same number of entries")):
        nt = note("zipf", n)
        sh = nt.split("second half: ")[1].split(";")[0] if "second half: " in nt else ""
        w("| %s | %s | %s | %s |" % (lab, fmt(med("zipf", n), 4), sh, nt))
    w("")
    zt = [(c, med("pgbench", "ce_zipf", c), med("zipf_pgbench_hit_ratio", "ce_shmem", c)) for c in clients]
    w("pgbench with `random_zipfian` on the warm cache: " + "; ".join(
        "%d client%s %s tps (%s the floor), hit ratio %s" % (c, "s" if c > 1 else "", fmt(t), ratio(t, med("pgbench", "select1", c)), fmt(h, 4))
        for c, t, h in zt if t is not None) + ".")
    w("")

# ---- the write path ----
if wr_clients:
    w("## Write path: pgbench TPC-B-like with invalidation triggers (median of %s)" % ", ".join(
        "%d runs at %d client%s" % (max([int(r[3]) for r in rows if r[0] == "writes" and r[2] == str(c)] or [0]),
                                   c, "s" if c > 1 else "") for c in wr_clients))
    w("")
    w("`pgbench -b tpcb-like -M %s`, scale %s, in its own database; triggers: `cache_attach('pgbench_accounts',"
      % (meta.get("writes mode", "simple"), meta.get("writes scale", "10")))
    w("'acct:{aid}')` (a key per written row) and `cache_attach('pgbench_branches', 'branches:')` (a prefix). Each")
    w("transaction updates one account, one teller and one branch and inserts a history row. \"shared memory only\":")
    w("the database's `cache_ext.redis_url = ''`, so the triggers see no Redis; \"+ Redis\": the database's")
    w("`redis_url` points at the bench's Redis. Both stores hold 10k unrelated keys (`app:session:<i>`, 200 bytes).")
    w("The variants ran back to back in each repetition, their order rotated from one repetition to the next;")
    w("`÷ no triggers` divides the medians, \"per run\" lists each repetition's own ratio (the targets take their")
    w("median). Consecutive runs of a few seconds can differ by 10% on this machine: a few hundredths either way is noise.")
    w("")
    w("| variant | clients | tps | ÷ no triggers | per run | Redis commands per transaction (first run; INFO commandstats) |")
    w("|---|---:|---:|---:|---|---|")
    for c in wr_clients:
        for n, lab in WR_LABELS.items():
            v = med("writes", n, c)
            rr = per_rep_ratios(n, "tpcb_none", c) if n != "tpcb_none" else []
            w("| %s | %d | %s | %s | %s | %s |" % (lab, c, fmt(v), ratio(v, med("writes", "tpcb_none", c)),
                                                 " ".join("%.3f" % x for x in rr) if rr else "–",
                                                 note("writes_redis", n, c) or "?"))
    w("")
    w("Every run (tps): " + "; ".join(
        "%s c=%s: %s" % (n, c, "/".join(fmt(x) for x in values("writes", n, c)))
        for n in WR_LABELS for c in wr_clients if values("writes", n, c)) + ".")
    w("")
    if meta.get("writes check"):
        w("Check before the runs, %s." % meta["writes check"])
        w("")

# ---- machine, versions, commands ----
w("## Machine and versions")
w("")
w("| | |")
w("|---|---|")
for k, v in meta.items():
    w("| %s | %s |" % (k, v.replace("|", "\\|")))
w("")
w("## Exact commands")
w("")
w("All services on 127.0.0.1 (TCP). `bench/sql/*.sql` are the pgbench scripts; `bench/sql/setup.sql` loads the data.")
w("")
w("```")
for k, vs in cmds.items():
    for v in vs:
        w("[%s] %s" % (k, v))
w("```")
print("\n".join(out))
