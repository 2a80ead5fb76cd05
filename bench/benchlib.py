"""Shared pieces of the benchmarks: servers under tcpserver with their CPU
accounted, Postfix's smtp-source as the load, and a queue stand-in."""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import time
from pathlib import Path

import qmail_harness as qh


class MeasuredServer(qh.SmtpServer):
    """An SmtpServer whose total CPU (tcpserver, every qmail-smtpd and what
    they ran, all reaped) is read when it stops."""

    def finish(self) -> float:
        """Stop tcpserver after its children are done; return CPU seconds."""
        os.kill(self.proc.pid, signal.SIGTERM)
        _, _, ru = os.wait4(self.proc.pid, 0)
        self.proc.returncode = 0
        self.proc.stdout.close()
        self._log.close()
        self.proc = None
        return ru.ru_utime + ru.ru_stime


class Context:
    def __init__(self, top: Path):
        self.top = top
        self.dir = top / "build/bench"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.control = qh.Control()
        self.queue = qh.Queue()
        self.sink = self.dir / "queue-sink"
        src = top / "bench/queue-sink.c"
        if not self.sink.exists() or self.sink.stat().st_mtime < src.stat().st_mtime:
            subprocess.run(["gcc", "-O2", "-o", str(self.sink), str(src)], check=True)
        self._servers: list[qh.SmtpServer] = []

    def server(self, smtpd: Path, env=None, measured=True, **kw) -> qh.SmtpServer:
        cls = MeasuredServer if measured else qh.SmtpServer
        s = cls(smtpd=smtpd, env=env, log=self.dir / f"{Path(smtpd).parent.name}-{time.monotonic_ns()}.log", **kw)
        self._servers.append(s)
        return s.start()

    def cleanup(self):
        for s in self._servers:
            s.stop()
        self._servers.clear()
        self.control.reset()
        self.queue.clear()


def smtp_source(port: int, sessions: int, messages: int, size: int = 1000,
                rcpts: int = 1, to: str = "u@test.example", per_connection: bool = True,
                sender: str = "bench@client.example", timeout: float = 600) -> float:
    """Run smtp-source against 127.0.0.1:port; return wall seconds."""
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
           "-r", str(rcpts), "-f", sender, "-t", to, "-M", "client.example"]
    if per_connection:
        cmd.append("-d")
    cmd.append(f"127.0.0.1:{port}")
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    if r.returncode != 0 or r.stderr.strip():
        raise RuntimeError(f"smtp-source failed: {r.stderr.strip()[:500]}")
    return wall


def median(xs):
    return statistics.median(xs)


def ratio(stock: float, patched: float, higher_is_better: bool = True) -> float:
    if higher_is_better:
        return patched / stock if stock else float("nan")
    return patched / stock if stock else float("nan")


def proc_private_kb(pid: int) -> int:
    """Private (unshared) memory of a process in KiB, from smaps_rollup."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    total = 0
    for key in ("Private_Clean", "Private_Dirty"):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        total += int(m.group(1)) if m else 0
    return total
