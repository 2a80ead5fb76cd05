"""Relay clients under their limits: messages/second with relay limits on, against stock and Postfix.

The load: Postfix's smtp-source, 20 parallel sessions, one message per
connection (the worst case for qmail-throttle: every connection opens the
store), and again with the connections kept (smtp-source -d), each message
to 2 relayed recipients (a domain not in rcpthosts), from a
relay client (RELAYCLIENT). qmail-smtpd's queue is bench/queue-sink.

- stock: netqmail-1.06 qmail-smtpd, no limits (it has none).
- patched: qmail-throttle's qmail-smtpd with a table that limits every client
  (default rcpt=... msg=... per hour and per day, far above the load), so
  every message makes two atomic check-and-charge steps on four counters in
  the LMDB store, and control/spamt.cdb is read by every connection.
- Postfix, without and with smtpd_client_message_rate_limit and
  smtpd_client_recipient_rate_limit (anvil) far above the load, on the same
  load; Postfix queues to its own disk queue and discards, so compare its two
  rows with each other, and qmail's two with each other.
- The floor: what any per-connection use of an embedded LMDB store costs
  here, from `throttle-bench floor` (a fresh process that only opens a raw
  LMDB environment and commits one write, against one that does nothing;
  whole-process CPU). Added to stock's CPU per connection it gives the best
  msg/s ratio such a design could reach on this machine (CPU-bound load).
- The other design's floor, from the same run: a long-lived counter daemon
  that qmail-smtpd would ask over a unix socket (as Postfix's anvil): a fresh
  process that connects and makes one round trip, plus the daemon's CPU for
  answering it, the daemon doing nothing else.
"""

import re
import shutil
import subprocess

import benchlib
import qmail_harness as qh

ROUNDS = 5
SESSIONS = 20
MESSAGES = 2000
RCPTS = 2
TO = "r@far.example"


def qmail_round(ctx, label, smtpd, per_connection=True):
    return benchlib.relay_round(ctx, smtpd, SESSIONS, MESSAGES, RCPTS, TO, per_connection)


def postfix_rate(ctx, name, main_cf) -> float:
    base = ctx.dir / f"postfix-{name}"
    shutil.rmtree(base, ignore_errors=True)
    peer = benchlib.PostfixPeer(base, benchlib.free_port(), main_cf).start()
    try:
        benchlib.smtp_source(peer.port, SESSIONS, 200, rcpts=RCPTS, to=TO)  # warm up
        wall = benchlib.smtp_source(peer.port, SESSIONS, MESSAGES, rcpts=RCPTS, to=TO)
    finally:
        peer.stop()
    return MESSAGES / wall


def floors_us(ctx) -> tuple[float, float]:
    """(embedded LMDB floor, counter daemon IPC floor), CPU us per connection."""
    d = ctx.dir / "lmdb-floor"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    r = subprocess.run([str(ctx.bench_bin), "floor", str(d), "1000"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"throttle-bench floor: {r.stderr.strip()}")
    print("  " + r.stdout.strip(), flush=True)
    lmdb = float(re.search(r" floor_us=(-?[0-9.]+)", r.stdout).group(1))
    ipc = float(re.search(r" ipc_floor_us=(-?[0-9.]+)", r.stdout).group(1))
    return lmdb, ipc


def run(ctx):
    benchlib.compile_table(ctx, "default rcpt=10000000/1h,100000000/1d msg=10000000/1h,100000000/1d\n")
    qh.reset_throttle()
    results = {"stock": [], "patched": []}
    for rnd in range(ROUNDS):
        for label, smtpd in benchlib.stock_and_patched(rnd):
            rate, cpu = qmail_round(ctx, label, smtpd)
            results[label].append((rate, cpu))
            print(f"  round {rnd + 1} {label:8} {rate:8.0f} msg/s {cpu:7.0f} us CPU/connection", flush=True)
    kept = {"stock": [], "patched": []}
    for rnd in range(4):
        for label, smtpd in benchlib.stock_and_patched(rnd):
            rate, cpu = qmail_round(ctx, label, smtpd, per_connection=False)
            kept[label].append(rate)
            print(f"  kept connections, round {rnd + 1} {label:8} {rate:8.0f} msg/s", flush=True)
    k_stock, k_patched = benchlib.median(kept["stock"]), benchlib.median(kept["patched"])
    used = subprocess.run([str(qh.HOME / "bin/qmail-throttlectl"), "-d", str(qh.HOME), "show", "127.0.0.1"],
                          capture_output=True, text=True).stdout
    print("  " + used.strip().replace("\n", "\n  "), flush=True)
    s_rate = benchlib.median([r[0] for r in results["stock"]])
    p_rate = benchlib.median([r[0] for r in results["patched"]])
    s_cpu = benchlib.median([r[1] for r in results["stock"]])
    p_cpu = benchlib.median([r[1] for r in results["patched"]])

    limits = {"smtpd_client_message_rate_limit": "10000000", "smtpd_client_recipient_rate_limit": "10000000",
              "anvil_rate_time_unit": "3600s"}
    pf_off = benchlib.median([postfix_rate(ctx, "off", {}) for _ in range(3)])
    pf_on = benchlib.median([postfix_rate(ctx, "on", limits) for _ in range(3)])
    print(f"  postfix {pf_off:8.0f} msg/s without limits, {pf_on:8.0f} msg/s with anvil rate limits", flush=True)
    floor, ipc_floor = floors_us(ctx)
    best = s_cpu / (s_cpu + floor)
    ipc_best = s_cpu / (s_cpu + ipc_floor)
    print(f"  an embedded LMDB store costs at least {floor:.0f} us of CPU per connection here: "
          f"best possible per-connection ratio {best:.3f}", flush=True)
    print(f"  a counter daemon costs at least {ipc_floor:.0f} us per connection in IPC alone: "
          f"best possible per-connection ratio {ipc_best:.3f}", flush=True)
    qh.reset_throttle()
    return [
        ("relay msg/s, limits on (qmail)", s_rate, p_rate, p_rate / s_rate),
        ("relay CPU us/connection, limits on", s_cpu, p_cpu, p_cpu / s_cpu),
        ("floor: CPU us/connection, raw LMDB open+write", s_cpu, s_cpu + floor, best),
        ("floor: CPU us/connection, daemon round trip", s_cpu, s_cpu + ipc_floor, ipc_best),
        ("relay msg/s, limits on, kept connections", k_stock, k_patched, k_patched / k_stock),
        ("Postfix msg/s: no limits vs anvil limits", pf_off, pf_on, pf_on / pf_off),
        ("msg/s: Postfix+limits vs qmail-throttle", pf_on, p_rate, p_rate / pf_on),
    ]
