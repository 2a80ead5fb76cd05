"""2,000 tarpitted connections held at once: private memory and CPU per held qmail-smtpd, against stock holding idle connections.

patched: qmail-throttle's qmail-smtpd with a teergrube entry for
127.0.1.0/24 (one shared state, st=20000 stmax=600000 tg=30), 2000
clients from that block each at DATA, held before their 354.
stock: netqmail-1.06's qmail-smtpd with 2000 clients that said HELO and
wait (an idle connection holds a stock process just as long).
Memory: Private_Clean + Private_Dirty from /proc/PID/smaps_rollup, summed
over the held processes; CPU: their user+system time over 10 s of holding.
"""

import resource
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import benchlib
import qmail_harness as qh
import teergrube_clients as tc

HELD = 2000
TABLE = "127.0.1.0/24 st=20000 stmax=600000 tg=30 group=bots\n"


def cpu_ticks(pids) -> int:
    total = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except (FileNotFoundError, IndexError):
            pass
    return total


def open_sessions(srv, n, teergrube: bool):
    sem = threading.Semaphore(16)

    def one(i):
        with sem:
            if teergrube:
                return tc.offender_session(srv, i)
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60,
                                            source_address=(f"127.0.1.{i % 250 + 1}", 0))
            s = qh.Session(sock)
            s.reply()
            s.cmd("HELO client.example")
            return s

    with ThreadPoolExecutor(64) as pool:
        return list(pool.map(one, range(n)))


def measure(ctx, label, smtpd, teergrube):
    srv = ctx.server(smtpd, measured=False, concurrency=HELD + 50)
    if teergrube:
        tc.prime(srv)
    t0 = time.monotonic()
    sessions = open_sessions(srv, HELD, teergrube)
    setup = time.monotonic() - t0
    if not qh.wait_for(lambda: len(srv.children()) >= HELD, 60):
        raise RuntimeError(f"{label}: only {len(srv.children())} processes")
    time.sleep(2)
    pids = srv.children()
    private = sum(benchlib.proc_private_kb(p) for p in pids) / len(pids)
    c0 = cpu_ticks(pids)
    time.sleep(10)
    cpu_ms = (cpu_ticks(pids) - c0) * 1000 / benchlib.os.sysconf("SC_CLK_TCK") / len(pids)
    if teergrube:
        waiting = sum(1 for line in srv.log().splitlines() if "teergrube" in line)
        if waiting > 1:
            raise RuntimeError(f"held sessions were released early: {srv.log()[-500:]}")
    for s in sessions:
        s.close()
    print(f"  {label:8} {len(pids)} held, set up in {setup:.1f} s: {private:7.0f} KiB private per process, "
          f"{cpu_ms:.3f} ms CPU per process in 10 s", flush=True)
    srv.stop()
    return private, cpu_ms


def run(ctx):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20000), hard))
    ctx.control.write("spamt", TABLE)
    ctx.control.write("tarpitbudget", f"{HELD + 100}\n")
    subprocess.run([str(qh.HOME / "bin/qmail-newspamt"), "-d", str(qh.HOME)], check=True)
    qh.reset_throttle()
    s_mem, s_cpu = measure(ctx, "stock", qh.STOCK_SMTPD, False)
    p_mem, p_cpu = measure(ctx, "patched", qh.PATCHED_SMTPD, True)
    qh.reset_throttle()
    return [
        ("private KiB per held process", s_mem, p_mem, p_mem / s_mem),
        ("CPU ms per held process in 10 s", s_cpu, p_cpu, (p_cpu / s_cpu) if s_cpu else "n/a"),
    ]
