"""Per-destination limits in qmail-send: what the bench cases destination_* share.

Three measurements, each with real qmail-send, qmail-rspawn and qmail-remote
(bench/cases/destination_scheduling.py, destination_cpu.py, destination_memory.py):

1. Scheduling efficiency. A network namespace of the bench's own with
   dnsmasq: big.example's MX at 127.0.2.1 and 100 small domains' at
   127.0.3.1, both tests/smtp/dest_sink.py listeners that hold every
   message HOLD seconds. concurrencyremote 50, control/concurrencydomains
   "big.example 10" and "* 5". BIG messages to big.example and 3 to each
   small domain, queued before qmail-send starts. The ideal time is what the
   caps allow: max(BIG/10, all/50) * HOLD; reported is ideal / actual
   (target >= 0.95). Stock netqmail-1.06 runs the same queue without caps
   (and opens 50 sessions to big.example); Postfix runs it with
   default_destination_concurrency_limit 5 and 10 for big.example (a
   transport of its own), its smtp client resolving the same MX records.
2. qmail-send CPU per delivery with 10,000 destination lines (9,900 domains,
   100 mx:/ip: lines, "*") against without the file, the same load of
   DELIVERIES deliveries to 200 domains, rounds taking turns (target <= 1.1x).
3. qmail-send memory with 100,000 held recipients ("held.example 0"): private
   memory against the same queue with concurrencyremote 0 (nothing read,
   nothing held), per held recipient, for 1,000 messages of 100 recipients
   and for 100,000 messages of one (target < 100 bytes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import benchlib
import destinations as dh
import qmail_harness as qh

HOLD = 3.0
BIG = 200
SMALL_DOMAINS = 100
SMALL_EACH = 3
GLOBAL = 50
BIG_CAP = 10
SMALL_CAP = 5
DELIVERIES = 2000
ROUNDS = 5
HELD = 100_000
STOCK_HOME = Path(os.environ.get("QT_BENCH_STOCK_HOME", qh.TOP / "build/test/stock-full/home"))


def small_domains():
    return [f"s{k}.example" for k in range(SMALL_DOMAINS)]


def world() -> dh.NetNs:
    records = {"mx": [("big.example", "mx.big.example", 10)] +
                     [(d, "mx.small.example", 10) for d in small_domains()],
               "a": [("mx.big.example", "127.0.2.1"), ("mx.small.example", "127.0.3.1")]}
    return dh.NetNs(records).start()


def load():
    return ([(f"big-{i}", [f"u{i}@big.example"]) for i in range(BIG)] +
            [(f"small-{d}-{i}", [f"u{i}@{d}"]) for d in small_domains() for i in range(SMALL_EACH)])


def ideal_seconds() -> float:
    total = BIG + SMALL_DOMAINS * SMALL_EACH
    big_rounds = -(-BIG // BIG_CAP)
    all_rounds = -(-total // GLOBAL)
    return max(big_rounds, all_rounds, -(-SMALL_EACH // SMALL_CAP)) * HOLD


def sinks(ns: dh.NetNs) -> dh.DestSink:
    sink = dh.DestSink({"127.0.2.1:25": ["big"], "127.0.3.1:25": ["small"]}, wrap=ns.wrap,
                       name="bench-dest").start()
    sink.command(f"holdfor {HOLD}")
    return sink


def qmail_schedule(label: str, home: Path, ns: dh.NetNs, caps: bool) -> dict:
    control, queue = qh.Control(home), qh.Queue(home)
    control.reset()
    queue.clear()
    if caps:
        control.write("concurrencydomains", f"big.example {BIG_CAP}\n* {SMALL_CAP}\n")
    sink = sinks(ns)
    send = None
    try:
        msgs = load()
        qh.queue_messages((dh.message(i, r) for i, r in msgs), home=home)
        # qmail-send first files every new message (todo/ -> info/, remote/,
        # with an fsync each) while it may not deliver; the clock starts when
        # it starts again with the whole queue known, as after a restart
        control.write("concurrencyremote", "0\n")
        send = qh.QmailSend(home=home, wrap=ns.wrap).start()
        todo = queue.dir / "todo"
        send.wait_until(lambda: not any(todo.rglob("*")), 600, "every new message filed")
        send.stop()
        control.write("concurrencyremote", f"{GLOBAL}\n")
        t0 = time.monotonic()
        send = qh.QmailSend(home=home, wrap=ns.wrap).start()
        rspawn = send.wait_until(lambda: send.pid("qmail-rspawn"), 30, "qmail-rspawn")
        cpu = {}

        def done():
            if send.successes() < len(msgs):
                return False
            cpu["send"] = qh.proc_cpu_seconds(send.proc.pid)
            cpu["rspawn"] = qh.proc_cpu_seconds(rspawn)
            cpu["remote"] = qh.proc_cpu_seconds(rspawn, children=True)
            return True

        send.wait_until(done, 600, "every delivery")
        wall = time.monotonic() - t0
        send.stop()
        sink.sync()
        got = sink.deliveries()
        assert len(got) == len(msgs) == len(set(got)), f"{label}: {len(got)} deliveries"
        r = {"wall": wall, "big_peak": sink.label("big")["peak"],
             "send_us": cpu["send"] / len(msgs) * 1e6,
             "cpu_us": (cpu["send"] + cpu["rspawn"] + cpu["remote"]) / len(msgs) * 1e6}
        print(f"  {label:8} {len(msgs)} deliveries in {wall:6.2f} s (ideal with the caps {ideal_seconds():.1f} s), "
              f"big.example peak {r['big_peak']} sessions, qmail-send {r['send_us']:.0f} us and "
              f"send+rspawn+remote {r['cpu_us']:.0f} us per delivery", flush=True)
        return r
    finally:
        sink.stop()
        if send is not None:
            send.stop()
        control.reset()
        queue.clear()


def postfix_schedule(ctx, ns: dh.NetNs) -> dict:
    """Postfix with the same caps, its smtp client resolving the same MX
    records inside the namespace. As for qmail, the clock starts when the
    whole queue is filed: messages wait in Postfix's deferred queue
    (defer_transports) until the bench lets them go (reload, postqueue -f)."""
    base = ctx.dir / "postfix-destinations"
    shutil.rmtree(base, ignore_errors=True)
    sink = sinks(ns)
    peer = benchlib.PostfixPeer(base, benchlib.free_port(), main_cf={
        "default_transport": "smtp", "relay_domains": "", "mydestination": "",
        "default_destination_concurrency_limit": str(SMALL_CAP),
        "initial_destination_concurrency": str(SMALL_CAP),
        "bigsmtp_destination_concurrency_limit": str(BIG_CAP),
        "default_process_limit": str(GLOBAL), "smtp_tls_security_level": "none",
        "transport_maps": "inline:{big.example=bigsmtp:}", "smtp_dns_support_level": "enabled",
        "defer_transports": "smtp, bigsmtp",
    }, wrap=ns.wrap, extra_services=[f"bigsmtp unix - - n - {GLOBAL} smtp"])
    try:
        peer.start()
        msgs = load()
        for ident, rcpts in msgs:
            peer.sendmail(dh.message(ident, rcpts)[2], "sender@test.example", rcpts)
        total = len(msgs)
        end = time.monotonic() + 600
        while peer.queued("deferred") < total and time.monotonic() < end:
            time.sleep(0.2)
        assert peer.queued("deferred") == total, f"postfix deferred {peer.queued('deferred')} of {total}"
        cpu0 = peer.cpu_seconds()
        t0 = time.monotonic()
        peer.reconfigure(defer_transports="")
        peer.flush()
        while len(sink.deliveries()) < total and time.monotonic() < end:
            time.sleep(0.05)
        wall = time.monotonic() - t0
        cpu = peer.cpu_seconds() - cpu0
        sink.sync()
        got = sink.deliveries()
        assert len(got) >= total, f"postfix delivered {len(got)} of {total}"
        r = {"wall": wall, "big_peak": sink.label("big")["peak"], "cpu_us": cpu / total * 1e6}
        print(f"  postfix  {total} deliveries in {wall:6.2f} s, big.example peak {r['big_peak']} sessions, "
              f"all Postfix processes {r['cpu_us']:.0f} us per delivery", flush=True)
        return r
    finally:
        sink.stop()
        peer.stop()


def scheduling(ctx) -> list:
    ns = world()
    try:
        p = qmail_schedule("patched", qh.HOME, ns, caps=True)
        s = qmail_schedule("stock", STOCK_HOME, ns, caps=False)
        f = postfix_schedule(ctx, ns)
    finally:
        ns.stop()
    ideal = ideal_seconds()
    return [
        ("time to deliver all, s (patched: caps)", s["wall"], p["wall"], p["wall"] / s["wall"]),
        ("patched: ideal time / actual (>= 0.95)", ideal, p["wall"], ideal / p["wall"]),
        ("big.example sessions at once (cap 10)", s["big_peak"], p["big_peak"], p["big_peak"] / s["big_peak"]),
        ("qmail-send CPU us per delivery", s["send_us"], p["send_us"], p["send_us"] / s["send_us"]),
        ("send+rspawn+remote CPU us per delivery", s["cpu_us"], p["cpu_us"], p["cpu_us"] / s["cpu_us"]),
        ("Postfix (caps) / patched: time to deliver", f["wall"], p["wall"], f["wall"] / p["wall"]),
        ("Postfix (all) / patched (send+rspawn+remote) CPU", f["cpu_us"], p["cpu_us"], f["cpu_us"] / p["cpu_us"]),
        ("Postfix big.example sessions at once", f["big_peak"], p["big_peak"], "-"),
    ]


def many_lines_file(domains: list[str]) -> str:
    lines = ["* 1000"]
    lines += [f"{d} 1000" for d in domains]
    lines += [f"other{k}.example {k % 50 + 1}" for k in range(9900 - len(domains))]
    lines += [f"mx:.hoster{k}.example 20" for k in range(50)] + [f"ip:10.{k}.0.0/16 20" for k in range(50)]
    return "\n".join(lines) + "\n"


def cpu_round(with_file: bool, domains: list[str], sink: qh.SmtpSink) -> float:
    """qmail-send's CPU per delivery for DELIVERIES deliveries to `domains`,
    from a start with the queue already filed to the last delivery."""
    control, queue = qh.Control(), qh.Queue()
    control.reset()
    queue.clear()
    sink.route(control)
    if with_file:
        control.write("concurrencydomains", many_lines_file(domains))
    per = DELIVERIES // len(domains)
    qh.queue_messages(dh.message(f"c{d}-{i}", [f"u{i}@{d}"]) for d in domains for i in range(per))
    control.write("concurrencyremote", "0\n")
    send = qh.QmailSend().start()
    try:
        todo = queue.dir / "todo"
        send.wait_until(lambda: not any(todo.rglob("*")), 600, "every new message filed")
    finally:
        send.stop()
    control.write("concurrencyremote", "100\n")
    send = qh.QmailSend().start()
    try:
        cpu = {}

        def done():
            if send.successes() < DELIVERIES:
                return False
            cpu["send"] = qh.proc_cpu_seconds(send.proc.pid)
            return True

        send.wait_until(done, 600, "every delivery")
        if with_file:
            assert "10001 destinations in force" in send.log()
        return cpu["send"] / DELIVERIES * 1e6
    finally:
        send.stop()
        control.reset()
        queue.clear()


def cpu_per_delivery(ctx) -> list:
    domains = [f"c{k}.example" for k in range(200)]
    sink = qh.SmtpSink(hold=0, name="bench-dest-cpu").start()
    without, with_ = [], []
    try:
        for n in range(ROUNDS):
            for first in benchlib.taking_turns(n, False, True):
                (with_ if first else without).append(cpu_round(first, domains, sink))
    finally:
        sink.stop()
    a, b = benchlib.median(without), benchlib.median(with_)
    print(f"  qmail-send CPU per delivery: without the file {[round(x) for x in without]} us, "
          f"with 10,000 lines {[round(x) for x in with_]} us", flush=True)
    return [("qmail-send CPU us/delivery: no file vs 10k lines", a, b, b / a)]


def held_memory_one(shape: str, messages: int, rcpts: int) -> tuple[float, float]:
    """(private KiB with the queue read and nothing held, with HELD held)."""
    control, queue = qh.Control(), qh.Queue()
    control.reset()
    queue.clear()
    control.write("smtproutes", ":127.0.0.1:9\n")
    qh.queue_messages((dh.message(f"h{m}", [f"user{m}-{k}@held.example" for k in range(rcpts)])
                       for m in range(messages)), parallel=16)
    sizes = {}
    try:
        for mode in ("baseline", "held"):
            if mode == "baseline":
                control.write("concurrencyremote", "0\n")
                control.remove("concurrencydomains")
            else:
                control.write("concurrencyremote", "100\n")
                control.write("concurrencydomains", "held.example 0\n")
            send = qh.QmailSend().start()
            try:
                todo = queue.dir / "todo"
                send.wait_until(lambda: not any(todo.iterdir()), 900, "the queue read")
                if mode == "held":
                    def all_held():
                        r = dh.destinations_tool()
                        return r.returncode == 0 and f", {HELD} recipients held" in r.stdout
                    send.wait_until(all_held, 900, f"{HELD} recipients held")
                sizes[mode] = benchlib.proc_private_kb(send.proc.pid)
            finally:
                send.stop()
    finally:
        control.reset()
        queue.clear()
    per = (sizes["held"] - sizes["baseline"]) * 1024 / HELD
    print(f"  {shape}: qmail-send private {sizes['baseline']} KiB with the queue read, {sizes['held']} KiB with "
          f"{HELD} recipients held: {per:.0f} bytes per held recipient", flush=True)
    return sizes["baseline"], sizes["held"]


def held_memory(ctx) -> list:
    rows = []
    for shape, messages, rcpts in (("1,000 messages x 100", HELD // 100, 100), ("100,000 messages x 1", HELD, 1)):
        base, held = held_memory_one(shape, messages, rcpts)
        per = (held - base) * 1024 / HELD
        rows.append((f"bytes per held recipient, {shape} (< 100)", "-", per, "-"))
    return rows

