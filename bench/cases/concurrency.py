"""Remote delivery to slow servers: 9000 deliveries at once against stock's 255.

Real qmail-send, qmail-rspawn and qmail-remote deliver a queue through
control/smtproutes to tests/smtp/smtp_sink.py on 127.0.0.1, a slow or
greylisting-ish remote MX. Stock netqmail-1.06 runs from a complete
installation of its own (conf-spawn 255, its maximum) with concurrencyremote
255; the patched one runs three times, with concurrencyremote 255, 1000 and
9000, to show how the spawn's cost per delivery grows with the deliveries in
progress. Each run delivers twice its concurrency, in two waves.

The sink holds every session after its message, before the "250", until the
whole wave is open at once (every delivery the concurrency allows) and at
least HOLD seconds have passed since the wave began; only then are memory and
the deliveries in flight measured, and the wave released. So the figures are
those of N deliveries at once however slowly this machine spawns them. When a
wave cannot get there (no new session for STALL seconds, or REACH_LIMIT
seconds in all: descriptor or process limits, a spawn too slow), the output
says so and names the state measured instead; a figure that could not be
measured is reported as such, with the reason.

Reported: sessions open at once, the time until the first wave was all open,
deliveries per second (all deliveries over the time from qmail-send's start
to the last success), the CPU of qmail-send and qmail-rspawn (per delivery:
this grows with the deliveries in progress), that of each qmail-remote (which
starts as a copy of qmail-rspawn, with two pipes per delivery in progress to
copy at fork and close at exec), and memory.
"""

from __future__ import annotations

import time
from pathlib import Path

import qmail_harness as qh
from benchlib import NOT_MEASURED, measured, ratio

HOLD = 45  # seconds each remote session takes at least
STALL = 180  # seconds without one more session open: the wave has stopped growing
REACH_LIMIT = 900  # seconds a wave may take to open all its sessions
SINK_HOLD = 1100  # the sink's own bound on a hold (qmail-remote's timeoutremote is 1200)
STOCK_HOME = qh.BENCH_STOCK_HOME
RCPTS = 10  # recipients per message, each at a domain of its own: one delivery each
RUNS = (("stock", 255), ("patched", 255), ("patched", 1000), ("patched", 9000))


def private_kb(pid: int):
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    return sum(int(line.split()[1]) for line in text.splitlines()
               if line.startswith(("Private_Clean:", "Private_Dirty:")))


def mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def remote_children(rspawn: int) -> list[int]:
    """The qmail-remote processes of this qmail-rspawn (not those of tests
    that may run beside the bench)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        if comm == "qmail-remote" and ppid == rspawn:
            out.append(int(stat.parent.name))
    return out


def wait_wave(send, sink, expected: int, began: float) -> tuple[int, str | None]:
    """Wait until the sink holds `expected` sessions; (held, None), or
    (the most it held, why not) when the wave stops growing or takes too long."""
    best = {"held": 0, "at": began, "why": None}

    def settled():
        held = sink.status()["held"]
        now = time.monotonic()
        if held > best["held"]:
            best.update(held=held, at=now)
        if held >= expected:
            return True
        if now - best["at"] > STALL:
            best["why"] = f"no new session for {STALL} s"
        elif now - began > REACH_LIMIT:
            best["why"] = f"still growing after {REACH_LIMIT} s"
        return best["why"] is not None

    send.wait_until(settled, REACH_LIMIT + STALL + 60, f"{expected} sessions held")
    return best["held"], best["why"]


def measure(send, rspawn: int, sink, avail0: int) -> dict:
    """Memory and deliveries in flight, now that the wave is held open."""
    held = sink.status()["held"]
    children = remote_children(rspawn)
    remote = [kb for kb in map(private_kb, children[:50]) if kb is not None]
    m = {"measured_held": held, "remotes": len(children),
         "send_kb": private_kb(send.proc.pid), "rspawn_kb": private_kb(rspawn),
         "remote_kb": sum(remote) / len(remote) if remote else None,
         "system_kb": (avail0 - mem_available_kb()) / held if held else None}
    why = "no session was open" if not held else "the process was gone"
    m["notes"] = [f"{k} not measured: {why}" for k, v in m.items() if v is None]
    if measured(m["system_kb"]) and m["system_kb"] < 0:
        m["notes"].append("system_kb not measured: MemAvailable rose while the sessions opened (other "
                          "processes on this machine gave memory back), so the difference is not theirs")
        m["system_kb"] = None
    for k, v in m.items():
        if v is None:
            m[k] = NOT_MEASURED
    return m


def fig(v, spec: str) -> str:
    return format(v, spec) if measured(v) else str(v)


def one(label: str, home: Path, concurrency: int) -> dict:
    control, queue = qh.Control(home), qh.Queue(home)
    control.reset()
    queue.clear()
    control.write("concurrencyremote", f"{concurrency}\n")
    total = 2 * concurrency
    messages = total // RCPTS
    name = f"{label} {concurrency:>5} at once"
    short = qh.descriptors_short(2 * concurrency + 5)
    if short:
        print(f"  {name}: the spawn's descriptor limit {short}", flush=True)
    sink = qh.SmtpSink(hold=SINK_HOLD, name=f"bench-sink-{label}-{concurrency}").start()
    send = None
    try:
        sink.route(control)
        qh.queue_messages(
            [("bench@test.example", [f"u{i}-{k}@r{k}.example" for k in range(RCPTS)],
              f"Subject: bench {i}\nX-Sink-Id: m{i}\n\n{'x' * 1000}\n".encode())
             for i in range(messages)], home=home)
        avail0 = mem_available_kb()
        t0 = time.monotonic()
        send = qh.QmailSend(home=home).start()
        rspawn = send.wait_until(lambda: send.pid("qmail-rspawn"), 30, "qmail-rspawn")
        released, began, mem, reach, later = 0, t0, None, None, []
        while released < total:
            expected = min(concurrency, total - released)
            held, why = wait_wave(send, sink, expected, began)
            if mem is None:
                mem = measure(send, rspawn, sink, avail0)
                reach = {"open_s": time.monotonic() - t0, "why": why, "held": held}
            elif why:
                later.append(f"NOT REACHED in a later wave: at most {held} of {expected} sessions open "
                             f"at once ({why}); the rest went without holds")
            while time.monotonic() < began + HOLD:
                time.sleep(0.2)
            if why:  # let everything go from now on: the rest is not a wave of N
                sink.hold_nobody()
                break
            sink.release()
            released += expected
            # the sink's status is rewritten ten times a second: count the next
            # wave once the released sessions show up as accepted
            send.wait_until(lambda: sink.status()["accepted"] >= released, 300, f"{released} accepted")
            began = time.monotonic()
        send.wait_until(lambda: send.successes() >= total, REACH_LIMIT + 600, f"{total} deliveries")
        wall = time.monotonic() - t0
        cpu = {"send": qh.proc_cpu_seconds(send.proc.pid), "rspawn": qh.proc_cpu_seconds(rspawn)}
        send.wait_until(lambda: not queue.message_files(), 120, "an empty queue")
        cpu["remote"] = qh.proc_cpu_seconds(rspawn, children=True)  # each reaped by now
        warning = [line for line in send.log().splitlines() if "warning: concurrencyremote" in line]
        send.stop()
        summary = sink.stop()
        got = sink.deliveries()
        assert len(got) == total == len(set(got)), f"{label}: {len(got)} deliveries, {len(set(got))} distinct"
        r = {"concurrency": concurrency, "reached": reach["why"] is None, "held": reach["held"],
             "open_s": reach["open_s"], "peak": summary["peak"], "rate": total / wall,
             "send_cpu": cpu["send"], "rspawn_cpu": cpu["rspawn"],
             "per_delivery_us": (cpu["send"] + cpu["rspawn"]) / total * 1e6,
             "remote_us": cpu["remote"] / total * 1e6, **mem}
        r["at_once"] = f"{concurrency}" if r["reached"] else f"{r['held']} (asked {concurrency})"
        if r["reached"]:
            state = (f"all {concurrency} open after {r['open_s']:.1f} s "
                     f"({concurrency / r['open_s']:.0f} sessions started/s)")
        else:
            state = (f"NOT REACHED: at most {r['held']} of {concurrency} sessions open at once "
                     f"({reach['why']}); the figures of this run are at {r['held']}, not {concurrency}")
        print(f"  {name}: first wave {state}; measured with {fig(mem['measured_held'], 'd')} sessions held by the "
              f"sink, {mem['remotes']} qmail-remote running", flush=True)
        for line in warning:
            print(f"  {name}: qmail-send: {line.strip()}", flush=True)
        for note in mem["notes"] + later:
            print(f"  {name}: {note}", flush=True)
        print(f"  {name}: {total} deliveries in {wall:6.1f} s: {r['rate']:7.1f}/s, sink peak {r['peak']} "
              f"sessions; CPU qmail-send {r['send_cpu']:.2f} s, qmail-rspawn {r['rspawn_cpu']:.2f} s "
              f"= {r['per_delivery_us']:.0f} us per delivery, qmail-remote {r['remote_us']:.0f} us each; "
              f"private memory with the wave open: qmail-send {fig(r['send_kb'], '.0f')} KiB, qmail-rspawn "
              f"{fig(r['rspawn_kb'], '.0f')} KiB, qmail-remote {fig(r['remote_kb'], '.0f')} KiB each; "
              + (f"MemAvailable {r['system_kb']:.0f} KiB less per session held (shared machine: other "
                 f"processes move this one)" if measured(r["system_kb"]) else "MemAvailable per session not measured"),
              flush=True)
        return r
    finally:
        sink.stop()  # first: sessions it holds keep qmail-send from exiting
        if send is not None:
            send.stop()
        control.reset()
        queue.clear()


def run(ctx):
    res = {(label, c): one(label, STOCK_HOME if label == "stock" else qh.HOME, c) for label, c in RUNS}
    s = res[RUNS[0]]
    patched = [res[("patched", c)] for _, c in RUNS[1:]]
    p = patched[-1]
    cost = ", ".join(f"{q['at_once']}: {q['per_delivery_us']:.0f} us "
                     f"({fig(ratio(s['per_delivery_us'], q['per_delivery_us']), '.2f')}x stock)" for q in patched)
    print(f"  send+rspawn CPU per delivery: stock at {s['at_once']}: {s['per_delivery_us']:.0f} us; patched at {cost}; "
          f"patched {p['at_once']} against patched {patched[0]['at_once']}: "
          f"{fig(ratio(patched[0]['per_delivery_us'], p['per_delivery_us']), '.2f')}x", flush=True)
    if not all(q["reached"] for q in (s, *patched)):
        print("  NOTE: not every run reached its concurrency (see NOT REACHED above): "
              "its rows are labelled with what it reached", flush=True)
    rows = [
        (f"sessions open at once (asked {s['concurrency']}/{p['concurrency']})", s["held"], p["held"], ratio(s["held"], p["held"])),
        (f"first wave open after s ({s['at_once']}/{p['at_once']})", s["open_s"], p["open_s"],
         ratio(s["open_s"], p["open_s"])),
        (f"deliveries/s (remote holds >= {HOLD} s)", s["rate"], p["rate"], ratio(s["rate"], p["rate"])),
        ("qmail-send CPU s", s["send_cpu"], p["send_cpu"], ratio(s["send_cpu"], p["send_cpu"])),
        ("qmail-rspawn CPU s", s["rspawn_cpu"], p["rspawn_cpu"], ratio(s["rspawn_cpu"], p["rspawn_cpu"])),
    ]
    for q in patched:
        rows.append((f"send+rspawn us/delivery, {q['at_once']} vs {s['at_once']}", s["per_delivery_us"], q["per_delivery_us"],
                     ratio(s["per_delivery_us"], q["per_delivery_us"])))
    rows += [
        ("qmail-remote CPU us per delivery", s["remote_us"], p["remote_us"], ratio(s["remote_us"], p["remote_us"])),
        ("qmail-send private KiB, wave open", s["send_kb"], p["send_kb"], ratio(s["send_kb"], p["send_kb"])),
        ("qmail-rspawn private KiB, wave open", s["rspawn_kb"], p["rspawn_kb"], ratio(s["rspawn_kb"], p["rspawn_kb"])),
        ("qmail-remote private KiB (each)", s["remote_kb"], p["remote_kb"], ratio(s["remote_kb"], p["remote_kb"])),
        ("MemAvailable KiB per session (with sink)", s["system_kb"], p["system_kb"],
         ratio(s["system_kb"], p["system_kb"])),
    ]
    return rows
