"""limits table: one full identity lookup (user, domain, IP, default) in a 100,000-entry table.

The installed qmail-newspamt compiles a generated control/spamt of 100,000
entries (users, domains, IPv4 and IPv6 addresses and blocks of several
prefix lengths, a default); bench/spamt-lookup (built here with conf-cxx's
flags) times single LimitsTable::lookup() calls for 10,000 clients (hits
and misses, authenticated or not), each 10 times in a shuffled order, with
the table kept open, and the cost of one connection (open, one lookup,
close), with the table read by pread() as qmail-smtpd reads it (a new
process per connection); each figure is the best of three repetitions. Stock qmail has no such table: the "stock" column
is the seed's way, rcptcheck-overlimit's `grep -Fi "KEY:" relaylimits |
tail -1` run by sh per lookup, on the same 100,000 keys.
"""

import random
import statistics
import subprocess
import time
from pathlib import Path

import qmail_harness as qh

ENTRIES = 100_000
QUERIES = 10_000
ROUNDS = 10  # x 3 repetitions
GREP_SAMPLES = 100

LIB = ["ip_address", "spamt_settings", "spamt_syntax", "text_syntax", "spamt_format", "spamt_compile", "limits_table",
       "spamt_explain"]


def build_bench(ctx) -> Path:
    out = ctx.dir / "spamt-lookup"
    srcs = [ctx.top / "bench/spamt-lookup.cpp"] + [ctx.top / f"src-overlay/{n}.cpp" for n in LIB]
    headers = list((ctx.top / "src-overlay").glob("*.h"))
    if not out.exists() or any(p.stat().st_mtime > out.stat().st_mtime for p in srcs + headers):
        cxx = (ctx.top / "src-overlay/conf-cxx").read_text().splitlines()[0].split()
        subprocess.run([*cxx, f"-I{ctx.top / 'src-overlay'}", "-o", str(out), *map(str, srcs), "-lcdb"], check=True)
    return out


def generate(rng: random.Random):
    """(spamt text, relaylimits text, queries): 100,000 entries and 10,000 clients."""
    lines = ["default rcpt=1000/1d authfail=5/10m st=1500 stmax=120000"]
    keys = []
    users, domains, v4, v6 = [], [], [], []
    for d in range(5_000):
        domains.append(f"domain{d}.example")
        lines.append(f"@domain{d}.example rcpt=5000/1d")
    for u in range(40_000):
        user = f"user{u}@domain{rng.randrange(5_000)}.example"
        users.append(user)
        lines.append(f"{user} rcpt=100/1h,1000/1d")
        keys.append(user)
    seen = set()

    def unique(text):
        if text in seen:
            return False
        seen.add(text)
        return True

    # IPv4: addresses and /28, /24, /16, /8 blocks
    for count, prefix in ((20_000, 32), (1_000, 28), (6_000, 24), (2_900, 16), (100, 8)):
        made = 0
        while made < count:
            a = [rng.randrange(1, 224), rng.randrange(256), rng.randrange(256), rng.randrange(256)]
            n = int.from_bytes(bytes(a), "big") & ((0xffffffff << (32 - prefix)) & 0xffffffff)
            addr = ".".join(str(b) for b in n.to_bytes(4, "big"))
            text = addr if prefix == 32 else f"{addr}/{prefix}"
            if not unique(text):
                continue
            made += 1
            v4.append((n, prefix))
            extra = " st=2000" if made % 10 == 0 else ""
            lines.append(f"{text} rcpt=300/1h{extra}")
            if prefix == 32:
                keys.append(addr)
    # IPv6: addresses and /64, /48, /32 blocks
    for count, prefix in ((10_000, 128), (10_000, 64), (4_000, 48), (1_000, 32)):
        made = 0
        while made < count:
            n = (0x2001 << 112) | (rng.getrandbits(112))
            n &= ((1 << 128) - 1) ^ ((1 << (128 - prefix)) - 1)
            groups = [f"{(n >> (112 - 16 * i)) & 0xffff:x}" for i in range(8)]
            addr = ":".join(groups)
            text = addr if prefix == 128 else f"{addr}/{prefix}"
            if not unique(text):
                continue
            made += 1
            v6.append((n, prefix))
            lines.append(f"{text} msg=50/1h")
    assert len(lines) == ENTRIES + 1, len(lines)

    def v4_in(n, prefix):
        host = rng.getrandbits(32 - prefix) if prefix < 32 else 0
        return ".".join(str(b) for b in (n | host).to_bytes(4, "big"))

    def v6_in(n, prefix):
        host = rng.getrandbits(128 - prefix) if prefix < 128 else 0
        m = n | host
        return ":".join(f"{(m >> (112 - 16 * i)) & 0xffff:x}" for i in range(8))

    queries = []
    for i in range(QUERIES):
        kind = i % 10
        if kind < 4:
            ip = v4_in(*rng.choice(v4))
        elif kind < 6:
            ip = v6_in(*rng.choice(v6))
        elif kind < 8:
            ip = ".".join(str(b) for b in (rng.randrange(1, 224), *rng.randbytes(3)))
        else:
            ip = "2001:" + ":".join(f"{rng.getrandbits(16):x}" for _ in range(7))
        r = rng.random()
        if r < 0.3:
            user = rng.choice(users)
        elif r < 0.5:
            user = f"nobody{i}@{rng.choice(domains)}"
        else:
            user = ""
        queries.append(f"{ip} {user}".rstrip())
    relaylimits = ":1000\n" + "".join(f"{k}:{rng.randrange(1, 5000)}\n" for k in keys)
    return "\n".join(lines) + "\n", relaylimits, queries, keys


def grep_lookup_us(path: Path, keys, rng) -> list:
    """rcptcheck-overlimit's lookup: sh, grep -Fi, tail; microseconds each."""
    times = []
    script = 'grep -Fi -- "$1:" "$2" | tail -n 1 | cut -d: -f2'
    for key in rng.sample(keys, GREP_SAMPLES):
        t0 = time.perf_counter()
        subprocess.run(["/bin/sh", "-c", script, "sh", key, str(path)], capture_output=True, check=False)
        times.append((time.perf_counter() - t0) * 1e6)
    return times


def run(ctx):
    rng = random.Random(20261122)
    bench = build_bench(ctx)
    spamt, relaylimits, queries, keys = generate(rng)
    ctrl = qh.Control()
    ctrl.remove("relaylimits")
    ctrl.write("spamt", spamt)
    t0 = time.perf_counter()
    subprocess.run([str(qh.HOME / "bin/qmail-newspamt")], check=True, timeout=300)
    compile_s = time.perf_counter() - t0
    cdb = ctrl.path("spamt.cdb")
    size_mb = cdb.stat().st_size / 1e6
    print(f"  qmail-newspamt: {ENTRIES} entries in {compile_s:.2f} s, spamt.cdb {size_mb:.1f} MB", flush=True)

    qfile = ctx.dir / "spamt-queries.txt"
    qfile.write_text("\n".join(queries) + "\n")
    out = subprocess.run([str(bench), str(cdb), str(qfile), str(ROUNDS)], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    r = dict(line.split("=", 1) for line in out.split())
    us = {k: float(v) / 1000 for k, v in r.items() if k.endswith("_read")}
    print(f"  {r['lookups']} lookups ({r['hits']} limited or exempt)", flush=True)
    print(f"  pread(), qmail-smtpd's: lookup median {us['median_ns_read']:.2f} us, p99 {us['p99_ns_read']:.2f} us, "
          f"mean {us['mean_ns_read']:.2f} us; per connection (open, lookup, close) "
          f"{us['connection_ns_read']:.1f} us", flush=True)

    rl = ctx.dir / "relaylimits-100k"
    rl.write_text(relaylimits)
    grep = grep_lookup_us(rl, keys, rng)
    g_median = statistics.median(grep)
    g_p99 = sorted(grep)[int(0.99 * (len(grep) - 1))]
    print(f"  seed (sh + grep -Fi + tail): {GREP_SAMPLES} lookups, median {g_median:.0f} us, p99 {g_p99:.0f} us",
          flush=True)
    ctrl.remove("spamt")
    ctrl.remove("spamt.cdb")
    return [
        ("median lookup us, pread (100k entries)", g_median, us["median_ns_read"], us["median_ns_read"] / g_median),
        ("p99 lookup us, pread", g_p99, us["p99_ns_read"], us["p99_ns_read"] / g_p99),
        ("per connection us, pread (smtpd's)", g_median, us["connection_ns_read"],
         us["connection_ns_read"] / g_median),
        ("qmail-newspamt 100k entries s", "-", compile_s, "-"),
        ("spamt.cdb MB", "-", size_mb, "-"),
    ]
