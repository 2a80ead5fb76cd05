"""Shared pieces of the benchmarks: servers under tcpserver with their CPU
accounted, Postfix's smtp-source as the load, and a queue stand-in."""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
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
        # in the throwaway installation's directory: qmail-smtpd runs what is
        # built here (queue-sink, checkpassword-accept), and cannot enter a
        # checkout in a 0700 home
        self.dir = qh.WORK / "bench"
        self.bench_bin = qh.BENCH_BIN  # bench/throttle-bench.cpp, built by make bench
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
    if not per_connection:
        cmd.append("-d")  # smtp-source -d: keep the connection for the next message
    cmd.append(f"127.0.0.1:{port}")
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    if r.returncode != 0 or r.stderr.strip():
        raise RuntimeError(f"smtp-source failed: {r.stderr.strip()[:500]}")
    return wall


class PostfixPeer:
    """A private Postfix instance on 127.0.0.1:port, the peer to compare with.

    Its own config, queue and data directories under `base`; mail for any
    recipient is accepted from 127.0.0.0/8 and discarded after queueing.
    `main_cf` adds or overrides main.cf settings (e.g. rate limits)."""

    def __init__(self, base: Path, port: int, main_cf: dict | None = None, wrap=(),
                 extra_services=()):
        self.base = Path(base)
        self.port = port
        self.main_cf = dict(main_cf or {})
        self.wrap = list(wrap)  # e.g. ip netns exec NAME: the instance runs in that namespace
        self.extra_services = list(extra_services)  # more master.cf lines

    def _postfix(self, *args):
        # postfix reports to syslog unless it has a terminal: give it one via script(1)
        cmd = " ".join([*self.wrap, "postfix", "-c", str(self.base / "etc"), *args])
        return subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=120)

    def sendmail(self, body: bytes, sender: str, rcpts) -> None:
        """Queue a message through this instance's sendmail (postdrop)."""
        r = subprocess.run(["sendmail", "-C", str(self.base / "etc"), "-f", sender, *rcpts], input=body,
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"postfix sendmail failed: {r.stderr.decode(errors='replace')[:300]}")

    def start(self) -> "PostfixPeer":
        import pwd
        etc, spool, data = self.base / "etc", self.base / "spool", self.base / "data"
        for d in (etc, spool, data):
            d.mkdir(parents=True, exist_ok=True)
        pw = pwd.getpwnam("postfix")
        os.chown(data, pw.pw_uid, pw.pw_gid)
        settings = {
            "compatibility_level": "3.6", "queue_directory": str(spool), "data_directory": str(data),
            "inet_interfaces": "127.0.0.1", "inet_protocols": "ipv4", "myhostname": "mx.test.example",
            "mydestination": "test.example", "mynetworks": "127.0.0.0/8", "relay_domains": "",
            "default_transport": "discard", "local_transport": "discard", "local_recipient_maps": "",
            "maillog_file": str(self.base / "maillog"), "maillog_file_prefixes": str(self.base),
            "smtpd_client_event_limit_exceptions": "",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_recipient_restrictions": "permit_mynetworks, reject",
        }
        settings.update(self.main_cf)
        self._settings = settings
        (etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        services = ["pickup unix n - n 60 1 pickup", "cleanup unix n - n - 0 cleanup",
                    "qmgr unix n - n 300 1 qmgr", "rewrite unix - - n - - trivial-rewrite",
                    "bounce unix - - n - 0 bounce", "defer unix - - n - 0 bounce",
                    "trace unix - - n - 0 bounce", "verify unix - - n - 1 verify",
                    "proxymap unix - - n - - proxymap", "smtp unix - - n - - smtp",
                    "showq unix n - n - - showq", "error unix - - n - - error",
                    "retry unix - - n - - error", "discard unix - - n - - discard",
                    "local unix - n n - - local", "anvil unix - - n - 1 anvil",
                    "scache unix - - n - 1 scache", "postlog unix-dgram n - n - 1 postlogd"]
        (etc / "master.cf").write_text(f"127.0.0.1:{self.port} inet n - n - 200 smtpd\n"
                                       + "".join(s + "\n" for s in services + self.extra_services))
        r = self._postfix("start")
        if r.returncode != 0:
            raise RuntimeError(f"postfix did not start: {r.stdout} {r.stderr}")
        end = time.monotonic() + 20
        probe = f"import socket; socket.create_connection(('127.0.0.1', {self.port}), timeout=1).close()"
        while time.monotonic() < end:
            # from inside the instance's namespace, if it has one
            if subprocess.run([*self.wrap, sys.executable, "-c", probe], capture_output=True).returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError("postfix smtpd did not listen")

    def stop(self) -> None:
        self._postfix("stop")

    def reconfigure(self, **settings) -> None:
        """Change main.cf settings of the running instance (postfix reload)."""
        self._settings.update(settings)
        (self.base / "etc/main.cf").write_text("".join(f"{k} = {v}\n" for k, v in self._settings.items()))
        r = self._postfix("reload")
        if r.returncode != 0:
            raise RuntimeError(f"postfix reload failed: {r.stdout} {r.stderr}")

    def flush(self) -> None:
        """Deliver the deferred queue now (postqueue -f)."""
        subprocess.run([*self.wrap, "postqueue", "-c", str(self.base / "etc"), "-f"], capture_output=True,
                       timeout=60, check=True)

    def queued(self, queue: str) -> int:
        """Messages in one of the instance's queues (incoming, active, deferred, ...)."""
        d = self.base / "spool" / queue
        return sum(1 for p in d.rglob("*") if p.is_file()) if d.exists() else 0

    def cpu_seconds(self) -> float:
        """CPU of every process of this instance so far (live processes)."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        pidfile = self.base / "spool/pid/master.pid"
        if not pidfile.exists():
            return 0.0
        master = int(pidfile.read_text().split()[0])
        pids = [master] + [int(p) for p in subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                                                            text=True).stdout.split()]
        for pid in pids:
            try:
                f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / tick
            except (FileNotFoundError, IndexError):
                pass
        return total


def compile_table(ctx, text: str) -> None:
    """control/spamt, compiled by the installed qmail-newspamt."""
    ctx.control.write("spamt", text)
    subprocess.run([str(qh.HOME / "bin/qmail-newspamt"), "-d", str(qh.HOME)], check=True)


def relay_round(ctx, smtpd, sessions: int, messages: int, rcpts: int, to: str,
                per_connection: bool = True) -> tuple[float, float]:
    """smtp-source against `smtpd` as a relay client (RELAYCLIENT), queue
    stand-in: (msg/s, CPU us per message of tcpserver, qmail-smtpd and all
    they ran). No throttle log line may appear: the limits are far away."""
    env = {"QMAILQUEUE": str(ctx.sink), "RELAYCLIENT": ""}
    srv = ctx.server(smtpd, env=env, concurrency=sessions + 10)
    wall = smtp_source(srv.port, sessions, messages, rcpts=rcpts, to=to, per_connection=per_connection)
    cpu = srv.finish()
    if "throttle" in srv.log():
        raise RuntimeError(f"unexpected throttle log lines: {srv.log()[:300]}")
    return messages / wall, cpu / messages * 1e6


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def taking_turns(round_number: int, first, second) -> tuple:
    """(first, second) in even rounds, (second, first) in odd ones: whichever
    runs second in a round runs after a load (connections in TIME_WAIT,
    caches) and must not always be the same."""
    return (first, second) if round_number % 2 == 0 else (second, first)


def stock_and_patched(round_number: int):
    """(label, qmail-smtpd) pairs of one round, taking turns going first."""
    return taking_turns(round_number, ("stock", qh.STOCK_SMTPD), ("patched", qh.PATCHED_SMTPD))


def parallel_clients(session_loop, clients: int, per_client: int) -> tuple[int, float]:
    """Runs session_loop(per_client) in `clients` forked processes at once;
    returns (sessions it reported done, wall seconds). Forked, so nothing is
    pickled (the cases are loaded from a path)."""
    import multiprocessing
    mp = multiprocessing.get_context("fork")
    counts = mp.Queue()
    t0 = time.monotonic()
    procs = [mp.Process(target=lambda: counts.put(session_loop(per_client))) for _ in range(clients)]
    for p in procs:
        p.start()
    done = sum(counts.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    return done, time.monotonic() - t0


BENCH_MESSAGE = b"Subject: bench\r\n\r\n" + b"x" * 1000 + b"\r\n.\r\n"


def starttls_messages(server: qh.SmtpServer, count: int, cafile: str, sender: str = "bench@client.example",
                      rcpts: tuple[str, ...] = ("u@test.example",), auth_plain: str | None = None) -> int:
    """`count` sessions one after the other: EHLO, STARTTLS, EHLO, AUTH PLAIN
    (when given), one message of BENCH_MESSAGE, QUIT. Returns how many
    messages were accepted; a refused AUTH or RCPT is an error."""
    import ssl
    import tlsauth as ta
    ctx = ssl.create_default_context(cafile=cafile)
    done = 0
    for _ in range(count):
        t = ta.starttls_at(server, ctx)
        if auth_plain is not None and not t.cmd("AUTH PLAIN " + auth_plain).startswith(b"235 "):
            raise RuntimeError("AUTH refused")
        t.cmd(f"MAIL FROM:<{sender}>")
        for rcpt in rcpts:
            if not t.cmd(f"RCPT TO:<{rcpt}>").startswith(b"250 "):
                raise RuntimeError(f"RCPT {rcpt} refused")
        t.cmd("DATA")
        t.send(BENCH_MESSAGE)
        if t.reply().startswith(b"250 "):
            done += 1
        t.cmd("QUIT")
        t.close()
    return done


def median(xs):
    return statistics.median(xs)


# What a table shows for a figure a case could not measure (bench/run prints
# it for a NaN too); the case prints the reason.
NOT_MEASURED = "not measured"


def measured(x) -> bool:
    return isinstance(x, (int, float)) and x == x  # not NaN, not NOT_MEASURED


def ratio(stock, patched):
    """patched / stock, or NOT_MEASURED when either is missing or stock is 0."""
    if not (measured(stock) and measured(patched)) or stock == 0:
        return NOT_MEASURED
    return patched / stock


def proc_private_kb(pid: int) -> int:
    """Private (unshared) memory of a process in KiB, from smaps_rollup."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    total = 0
    for key in ("Private_Clean", "Private_Dirty"):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        total += int(m.group(1)) if m else 0
    return total
