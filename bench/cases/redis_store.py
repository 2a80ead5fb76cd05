"""The Redis store against the LMDB store: decision cost, and relay msg/s against stock.

1. One relay-limit decision (an atomic check-and-charge of three counters:
   user, domain, client address), timed in bench/throttle-bench with the
   store's connection kept: LMDB in build/bench, a redis-server on loopback,
   and a three-primary Redis Cluster on loopback (the three identities in
   different slots: reserve on each, then commit - two round trips, counted).
   Also a fresh process's first decision (connect or open included), as
   qmail-smtpd pays it once per connection. Targets: Redis median under
   100 us, p99 under 1 ms; at most two round trips per decision on a cluster.
2. Relay msg/s, Postfix's smtp-source, 20 sessions, one message of two
   relayed recipients per connection, and again with kept connections:
   stock qmail-smtpd (no limits), patched with the limits table on the LMDB
   store, patched with the same table on Redis (control/throttlestore);
   rounds take turns. The "stock" column of each row is the first of the two
   named, "patched" the second.
The machine is a shared 2-core VM: the Redis server, the clients and
qmail-smtpd share the two cores, so Redis's own CPU counts against qmail.
"""

import re
import shutil
import subprocess

import benchlib
import qmail_harness as qh
import redis_harness as rh

DECISIONS = 20000
OPENS = 200
ROUNDS = 5
SESSIONS = 20
MESSAGES = 2000
RCPTS = 2
TO = "r@far.example"
TABLE = "default rcpt=10000000/1h,100000000/1d msg=10000000/1h,100000000/1d\n"


def bench(ctx, *args) -> dict:
    r = subprocess.run([str(ctx.top / "build/bench/throttle-bench"), *map(str, args)],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"throttle-bench {args}: {r.stderr.strip()}")
    print("  " + r.stdout.strip(), flush=True)
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", r.stdout)}


def decisions(ctx, redis, cluster):
    d = ctx.dir / "redis-store-lmdb"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True, mode=0o700)
    lmdb = bench(ctx, "lmdb", d, DECISIONS)
    lmdb_open = bench(ctx, "open", d, OPENS)
    shutil.rmtree(d, ignore_errors=True)
    cpu0 = redis_cpu(redis)
    one = bench(ctx, "redis", redis.url, DECISIONS)
    server_us = (redis_cpu(redis) - cpu0) / (DECISIONS + 1) * 1e6
    print(f"  redis-server CPU per decision: {server_us:.1f} us", flush=True)
    one_open = bench(ctx, "open", redis.url, OPENS)
    many = bench(ctx, "redis", redis.url, DECISIONS // 8, 8)
    clus = bench(ctx, "redis", cluster.url, DECISIONS // 2)
    return [
        ("decision median us: LMDB | Redis", lmdb["median_us"], one["median_us"],
         one["median_us"] / lmdb["median_us"]),
        ("decision p99 us: LMDB | Redis", lmdb["p99_us"], one["p99_us"], one["p99_us"] / lmdb["p99_us"]),
        ("decision median us: Redis | Cluster", one["median_us"], clus["median_us"],
         clus["median_us"] / one["median_us"]),
        ("decision p99 us: Redis | Cluster", one["p99_us"], clus["p99_us"], clus["p99_us"] / one["p99_us"]),
        ("round trips/decision: Redis | Cluster", one["round_trips_per_decision"],
         clus["round_trips_per_decision"], "-"),
        ("redis-server CPU us/decision", "-", server_us, "-"),
        ("decisions/s, 8 processes: Redis", "-", many["decisions_per_s"], "-"),
        ("fresh process 1st decision us: LMDB | Redis", lmdb_open["open_median_us"] +
         lmdb_open["first_decision_median_us"], one_open["open_median_us"] + one_open["first_decision_median_us"],
         "-"),
    ]


def redis_cpu(redis) -> float:
    info = redis.cmd("INFO", "cpu")
    return sum(float(v) for k, v in re.findall(r"(used_cpu_(?:sys|user)):([0-9.]+)", info))


def relay_round(ctx, smtpd, store: str | None, per_connection: bool) -> tuple[float, float]:
    """(msg/s, qmail CPU us per message) of one round on `store`."""
    if store is None:
        ctx.control.remove("throttlestore")
    else:
        ctx.control.write("throttlestore", store + "\n")
    return benchlib.relay_round(ctx, smtpd, SESSIONS, MESSAGES, RCPTS, TO, per_connection)


def relay(ctx, redis):
    benchlib.compile_table(ctx, TABLE)
    qh.reset_throttle()
    setups = {"stock": (qh.STOCK_SMTPD, None), "lmdb": (qh.PATCHED_SMTPD, "lmdb"),
              "redis": (qh.PATCHED_SMTPD, redis.url)}
    per_conn = {k: [] for k in setups}
    kept = {k: [] for k in setups}
    order = list(setups)
    for rnd in range(ROUNDS):
        for label in order[rnd % 3:] + order[:rnd % 3]:  # each goes first in turn
            smtpd, store = setups[label]
            per_conn[label].append(relay_round(ctx, smtpd, store, True))
            print(f"  round {rnd + 1} {label:6} {per_conn[label][-1][0]:8.0f} msg/s "
                  f"{per_conn[label][-1][1]:7.0f} us qmail CPU/message", flush=True)
    for rnd in range(3):
        for label in order[rnd % 3:] + order[:rnd % 3]:
            smtpd, store = setups[label]
            kept[label].append(relay_round(ctx, smtpd, store, False)[0])
            print(f"  kept connections, round {rnd + 1} {label:6} {kept[label][-1]:8.0f} msg/s", flush=True)
    ctx.control.remove("throttlestore")
    qh.reset_throttle()
    rate = {k: benchlib.median([r[0] for r in v]) for k, v in per_conn.items()}
    cpu = {k: benchlib.median([r[1] for r in v]) for k, v in per_conn.items()}
    krate = {k: benchlib.median(v) for k, v in kept.items()}
    return [
        ("relay msg/s: stock | LMDB", rate["stock"], rate["lmdb"], rate["lmdb"] / rate["stock"]),
        ("relay msg/s: stock | Redis", rate["stock"], rate["redis"], rate["redis"] / rate["stock"]),
        ("relay msg/s: LMDB | Redis", rate["lmdb"], rate["redis"], rate["redis"] / rate["lmdb"]),
        ("qmail CPU us/msg: LMDB | Redis", cpu["lmdb"], cpu["redis"], cpu["redis"] / cpu["lmdb"]),
        ("kept conns msg/s: stock | LMDB", krate["stock"], krate["lmdb"], krate["lmdb"] / krate["stock"]),
        ("kept conns msg/s: stock | Redis", krate["stock"], krate["redis"], krate["redis"] / krate["stock"]),
    ]


def run(ctx):
    with rh.RedisServer(name="bench") as redis, rh.RedisCluster() as cluster:
        rows = decisions(ctx, redis, cluster)
        redis.cmd("FLUSHALL")
        rows += relay(ctx, redis)
    return rows
