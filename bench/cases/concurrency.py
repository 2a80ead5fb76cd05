"""Remote delivery to slow servers: 9000 deliveries at once against stock's 255.

Real qmail-send, qmail-rspawn and qmail-remote deliver a queue through
control/smtproutes to tests/smtp/smtp_sink.py on 127.0.0.1, which holds every
session HOLD seconds after the message before it answers "250", as a slow or
greylisting-ish remote MX would. Stock netqmail-1.06 runs from a complete
installation of its own (conf-spawn 255, its maximum) with concurrencyremote
255; the patched one with concurrencyremote 9000. Each delivers twice its
concurrency, so a second wave follows the first. Reported: sessions open at
once, deliveries per second (all deliveries over the time from qmail-send's
start to the last success), the CPU of qmail-send and qmail-rspawn, that of
each qmail-remote (which starts as a copy of qmail-rspawn, with two pipes
per delivery in progress to copy at fork and close at exec), and memory.
"""

import time
from pathlib import Path

import qmail_harness as qh

HOLD = 45  # seconds each remote session takes
STOCK_HOME = qh.BENCH_STOCK_HOME
RCPTS = 10  # recipients per message: one delivery each


def private_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in text.splitlines()
               if line.startswith(("Private_Clean:", "Private_Dirty:")))


def mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def qmail_remote_pids(limit: int) -> list[int]:
    out = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "qmail-remote":
                out.append(int(comm.parent.name))
        except OSError:
            continue
        if len(out) >= limit:
            break
    return out


def one(label: str, home: Path, concurrency: int) -> dict:
    control, queue = qh.Control(home), qh.Queue(home)
    control.reset()
    queue.clear()
    control.write("concurrencyremote", f"{concurrency}\n")
    total = 2 * concurrency
    messages = total // RCPTS
    sink = qh.SmtpSink(hold=HOLD, name=f"bench-sink-{label}").start()
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
        remote_kb = []
        mem = {}
        cpu = {}

        def done():
            n = send.successes()
            if n < total:
                held = sink.status()["held"]
                if not mem and held >= concurrency * 0.9:
                    mem["system"] = (avail0 - mem_available_kb()) / held
                    remote_kb.extend(private_kb(p) for p in qmail_remote_pids(50))
                    mem["qmail-send"] = private_kb(send.proc.pid)
                    mem["qmail-rspawn"] = private_kb(rspawn)
                return False
            cpu["qmail-send"] = qh.proc_cpu_seconds(send.proc.pid)
            cpu["qmail-rspawn"] = qh.proc_cpu_seconds(rspawn)
            cpu["qmail-remote"] = qh.proc_cpu_seconds(rspawn, children=True)
            return True

        send.wait_until(done, 30 * HOLD + 600, f"{total} deliveries")
        wall = time.monotonic() - t0
        send.wait_until(lambda: not queue.message_files(), 120, "an empty queue")
        send.stop()
        summary = sink.stop()
        got = sink.deliveries()
        assert len(got) == total == len(set(got)), f"{label}: {len(got)} deliveries, {len(set(got))} distinct"
        r = {
            "peak": summary["peak"],
            "rate": total / wall,
            "send_cpu": cpu["qmail-send"],
            "rspawn_cpu": cpu["qmail-rspawn"],
            "per_delivery_us": (cpu["qmail-send"] + cpu["qmail-rspawn"]) / total * 1e6,
            "remote_us": cpu["qmail-remote"] / total * 1e6,
            "remote_kb": sum(remote_kb) / len(remote_kb) if remote_kb else float("nan"),
            "send_kb": mem.get("qmail-send", float("nan")),
            "rspawn_kb": mem.get("qmail-rspawn", float("nan")),
            "system_kb": mem.get("system", float("nan")),
        }
        print(f"  {label:8} {total} deliveries in {wall:6.1f} s: {r['rate']:7.1f}/s, "
              f"peak {r['peak']} sessions, CPU qmail-send {r['send_cpu']:.2f} s, "
              f"qmail-rspawn {r['rspawn_cpu']:.2f} s, qmail-remote {r['remote_us']:.0f} us each; private memory at the peak: qmail-send "
              f"{r['send_kb']} KiB, qmail-rspawn {r['rspawn_kb']} KiB, qmail-remote "
              f"{r['remote_kb']:.0f} KiB each; MemAvailable {r['system_kb']:.0f} KiB less "
              f"per session held", flush=True)
        return r
    finally:
        sink.stop()  # first: sessions it holds keep qmail-send from exiting
        if send is not None:
            send.stop()
        control.reset()
        queue.clear()


def run(ctx):
    s = one("stock", STOCK_HOME, 255)
    p = one("patched", qh.HOME, 9000)
    return [
        ("sessions open at once", s["peak"], p["peak"], p["peak"] / s["peak"]),
        (f"deliveries/s (remote holds {HOLD} s)", s["rate"], p["rate"], p["rate"] / s["rate"]),
        ("qmail-send CPU s", s["send_cpu"], p["send_cpu"], p["send_cpu"] / s["send_cpu"]),
        ("qmail-rspawn CPU s", s["rspawn_cpu"], p["rspawn_cpu"], p["rspawn_cpu"] / s["rspawn_cpu"]),
        ("send+rspawn CPU us per delivery", s["per_delivery_us"], p["per_delivery_us"],
         p["per_delivery_us"] / s["per_delivery_us"]),
        ("qmail-remote CPU us per delivery", s["remote_us"], p["remote_us"], p["remote_us"] / s["remote_us"]),
        ("qmail-send private KiB at peak", s["send_kb"], p["send_kb"], p["send_kb"] / s["send_kb"]),
        ("qmail-rspawn private KiB at peak", s["rspawn_kb"], p["rspawn_kb"], p["rspawn_kb"] / s["rspawn_kb"]),
        ("qmail-remote private KiB (each)", s["remote_kb"], p["remote_kb"], p["remote_kb"] / s["remote_kb"]),
        ("MemAvailable KiB per session (with sink)", s["system_kb"], p["system_kb"],
         p["system_kb"] / s["system_kb"]),
    ]
