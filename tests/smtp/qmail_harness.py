"""qmail_harness: start and always stop real qmail programs for tests.

Everything runs against the throwaway installation that `make test-install`
puts in QT_HOME, built from QT_TREE; QT_STOCK is unpatched netqmail-1.06
built for the same home. All of it lies in QT_DIR (the Makefile's TEST_DIR,
under /var/lib/qmail-throttle), where qmail's users can reach it.

- Control: the control/ directory, reset to a known baseline for every test.
- SmtpServer: qmail-smtpd (patched, or stock) under tcpserver on 127.0.0.1,
  on a free port (tcpserver -1 reports it), its log captured to a file.
  It is a context manager and is also stopped by the `qmail` fixture.
- Queue: what qmail-queue left in the queue while qmail-send is not running.
- QmailSend: qmail-start/qmail-send delivering, for tests that need delivery.
- SmtpSink: tests/smtp/smtp_sink.py, a remote SMTP server that holds
  sessions open and counts them; control/smtproutes sends mail to it.
- queue_messages(): put messages into the queue with qmail-queue directly.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _paths() -> dict:
    """The QT_* variables: the Makefile is their one source of truth. make
    test/demo/bench pass them; run any other way, they are asked of make."""
    names = ("QT_TOP", "QT_DIR", "QT_HOME", "QT_TREE", "QT_STOCK", "QT_FORTIFY",
             "QT_BENCH_STOCK_HOME", "QT_BENCH_BIN", "QT_STOCKSRC", "NETQMAIL_TARBALL")
    if all(n in os.environ for n in names):
        return {n: os.environ[n] for n in names}
    top = Path(__file__).resolve().parents[2]
    out = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(top), "qt-env"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"make qt-env failed: {out.stderr.strip()}")
    found = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return {n: os.environ.get(n, found[n]) for n in names}


_P = _paths()
TOP = Path(_P["QT_TOP"])
# The throwaway installation's directory (the Makefile's TEST_DIR), outside
# the checkout so that qmail's users reach it; everything they run in tests
# lives there.
WORK = Path(_P["QT_DIR"])
HOME = Path(_P["QT_HOME"])
TREE = Path(_P["QT_TREE"])
STOCK = Path(_P["QT_STOCK"])
# The delivering programs built with -D_FORTIFY_SOURCE=2 for HOME (make fortify-tree).
FORTIFY = Path(_P["QT_FORTIFY"])
# bench: stock qmail with conf-spawn 255 installed in its own home, and throttle-bench.
BENCH_STOCK_HOME = Path(_P["QT_BENCH_STOCK_HOME"])
BENCH_BIN = Path(_P["QT_BENCH_BIN"])
# The verified stock sources (build/src) and the input they came from.
STOCKSRC = Path(_P["QT_STOCKSRC"])
TARBALL = Path(_P["NETQMAIL_TARBALL"])
LOGS = WORK / "logs"

PATCHED_SMTPD = HOME / "bin/qmail-smtpd"
STOCK_SMTPD = STOCK / "qmail-smtpd"

# The control files every test starts from: a small MX for test.example.
BASELINE_CONTROL = {
    "me": "mx.test.example\n",
    "rcpthosts": "test.example\nlocal.example\n",
    "locals": "test.example\nlocal.example\n",
    "defaultdomain": "test.example\n",
    "plusdomain": "test.example\n",
}


class Control:
    """The installation's control/ directory."""

    def __init__(self, home: Path = HOME):
        self.dir = home / "control"

    def reset(self) -> None:
        for p in self.dir.iterdir():
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        for name, text in BASELINE_CONTROL.items():
            self.write(name, text)

    def write(self, name: str, text: str | bytes, mode: int = 0o644) -> Path:
        p = self.dir / name
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(text.encode() if isinstance(text, str) else text)
        os.chmod(tmp, mode)
        tmp.rename(p)
        return p

    def remove(self, name: str) -> None:
        (self.dir / name).unlink(missing_ok=True)

    def path(self, name: str) -> Path:
        return self.dir / name


def runnable(program: Path) -> Path:
    """A copy of a test program of the checkout in WORK/bin, where qmail's
    users can run it (they may not enter the checkout); copied again when
    the program changes."""
    copy = WORK / "bin" / program.name
    data = program.read_bytes()
    if not copy.exists() or copy.read_bytes() != data:
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_name(copy.name + ".tmp")
        tmp.write_bytes(data)
        tmp.chmod(0o755)
        tmp.rename(copy)
    return copy


def uid_gid(user: str = "qmaild", group: str = "nofiles") -> tuple[int, int]:
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid


class SmtpServer:
    """qmail-smtpd under tcpserver on 127.0.0.1 and a free port."""

    def __init__(self, smtpd: Path = PATCHED_SMTPD, args=(), env=None,
                 concurrency: int = 40, user: str = "qmaild",
                 tcpserver_opts=(), log: Path | None = None, name: str = "smtpd"):
        self.smtpd = Path(smtpd)
        self.args = list(args)
        self.env = dict(env or {})
        self.concurrency = concurrency
        self.user = user
        self.tcpserver_opts = list(tcpserver_opts)
        self.logpath = log or (LOGS / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log")
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self) -> "SmtpServer":
        uid, gid = uid_gid(self.user)
        self.logpath.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.logpath, "wb")
        env = {"PATH": "/usr/bin:/bin"}
        env.update(self.env)
        self.proc = subprocess.Popen(self.command(uid, gid), env=env, stdout=subprocess.PIPE, stderr=self._log,
                                     start_new_session=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the server did not start: {self.log()}")
        self.port = int(line)
        return self

    def command(self, uid: int, gid: int) -> list[str]:
        """What runs the server: it prints its port on a line, then serves."""
        return ["tcpserver", "-1", "-H", "-R", "-l", "0", "-u", str(uid), "-g", str(gid),
                "-c", str(self.concurrency), *self.tcpserver_opts,
                "127.0.0.1", "0", str(self.smtpd), *self.args]

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:  # qmail-smtpd children left in the group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc.stdout.close()
        self._log.close()
        self.proc = None

    def log(self) -> str:
        try:
            return self.logpath.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def children(self) -> list[int]:
        """The qmail-smtpd processes tcpserver runs now (one a session)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def connect(self, timeout: float = 60) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def connect_from(source: str, port: int, to: str = "127.0.0.1", timeout: float = 60) -> socket.socket:
    """A connection from a given local address: on Linux the whole of
    127.0.0.0/8 is this host's, so any 127.x.y.z is a client of its own."""
    return socket.create_connection((to, port), timeout=timeout, source_address=(source, 0))


CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def in_netns(name: str):
    """This thread in network namespace `name` (ip netns add) for the
    block: sockets made in it stay in that namespace afterwards."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {name}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(own)


class Smtpd6Server(SmtpServer):
    """qmail-smtpd behind tests/smtp/tcp6server.py (an IPv6 ucspi-tcp
    server) on [::] in network namespace `netns`, with the uid, gid and
    environment tcpserver would give it; connect_from() reaches it from one
    of the namespace's addresses."""

    PROGRAM = Path(__file__).resolve().parent / "tcp6server.py"

    def __init__(self, netns: str, **kw):
        super().__init__(name="smtpd6", **kw)
        self.netns = netns

    def command(self, uid: int, gid: int) -> list[str]:
        # ip netns exec execs the server: its pid is the server's
        return ["ip", "netns", "exec", self.netns, sys.executable, str(self.PROGRAM), str(uid), str(gid), "::",
                str(self.smtpd), *self.args]

    def connect_from(self, source: str, to: str, timeout: float = 60) -> socket.socket:
        with in_netns(self.netns):
            return connect_from(source, self.port, to, timeout)


class Session:
    """A raw SMTP client: send exact bytes, read complete replies."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:  # the server quit with input unread
            return b""

    def _line(self) -> bytes | None:
        while b"\n" not in self.buf:
            chunk = self._recv()
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def reply(self) -> bytes:
        """One complete reply (all continuation lines); b'' at EOF."""
        out = b""
        while True:
            line = self._line()
            if line is None:
                return out + self.buf
            out += line
            if len(line) < 4 or line[3:4] != b"-":
                return out

    def cmd(self, line: str | bytes) -> bytes:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def rest(self) -> bytes:
        """Everything until the server closes."""
        out = self.buf
        self.buf = b""
        while True:
            chunk = self._recv()
            if not chunk:
                return out
            out += chunk

    def close(self) -> None:
        self.sock.close()


class Queue:
    """Messages qmail-queue left in the queue (qmail-send not running)."""

    SUBDIRS = ("mess", "info", "local", "remote", "todo", "intd", "bounce")

    def __init__(self, home: Path = HOME):
        self.dir = home / "queue"

    def clear(self) -> None:
        for sub in self.SUBDIRS:
            d = self.dir / sub
            for p in d.rglob("*"):
                if p.is_file():
                    p.unlink()
        for p in (self.dir / "pid").glob("*"):
            p.unlink()

    def message_files(self) -> list[Path]:
        """Every message in the queue, whatever its state (queue/mess)."""
        return [p for p in (self.dir / "mess").rglob("*") if p.is_file()]

    def messages(self) -> list[dict]:
        """[{'sender':..., 'rcpts': [...], 'body': bytes}] of queued messages."""
        out = []
        for todo in sorted((self.dir / "todo").glob("*"), key=lambda p: int(p.name)):
            env = todo.read_bytes().split(b"\0")
            sender = None
            rcpts = []
            for field in env:
                if field.startswith(b"F"):
                    sender = field[1:].decode()
                elif field.startswith(b"T"):
                    rcpts.append(field[1:].decode())
            body = b""
            for m in (self.dir / "mess").glob(f"*/{todo.name}"):
                body = m.read_bytes()
            out.append({"sender": sender, "rcpts": rcpts, "body": body})
        return out


class QmailSend:
    """qmail-start (as root) running qmail-send and its helpers; log in a file.

    bindir: where qmail-start, qmail-send, the spawns and qmail-remote come
    from (default HOME/bin; e.g. FORTIFY, built for the same home).
    limits: {resource.RLIMIT_...: (soft, hard)} set before qmail-start runs,
    so qmail-send and the spawns inherit them.
    wrap: a command that runs qmail-start, e.g. ["ip", "netns", "exec", NAME]
    (it must exec it, so that the process is qmail-send)."""

    def __init__(self, home: Path = HOME, defaultdelivery: str = "./Maildir/",
                 bindir: Path | None = None, limits: dict | None = None, wrap=()):
        self.wrap = list(wrap)  # a command prefix, e.g. ip netns exec NAME
        self.home = home
        self.defaultdelivery = defaultdelivery
        self.bindir = Path(bindir) if bindir else home / "bin"
        self.limits = dict(limits or {})
        self.logpath = LOGS / f"qmail-send-{os.getpid()}-{time.monotonic_ns()}.log"
        self.proc = None

    def start(self) -> "QmailSend":
        self.logpath.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.logpath, "wb")
        env = {"PATH": f"{self.bindir}:{self.home}/bin:/usr/bin:/bin"}
        limits = self.limits

        def setlimits():
            for which, pair in limits.items():
                resource.setrlimit(which, pair)

        self.proc = subprocess.Popen([*self.wrap, str(self.bindir / "qmail-start"), self.defaultdelivery, "cat"],
                                     cwd=self.home, env=env, stdout=self._log, stderr=self._log,
                                     start_new_session=True, preexec_fn=setlimits)
        return self

    def wait_until(self, pred, timeout: float, what: str):
        """pred()'s first true value within timeout seconds; AssertionError
        (with the end of the log) on timeout, and at once when qmail-send
        logs an alert (a spawn that died, say) or exits."""
        end = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            log = self.log()
            if "alert:" in log or self.proc.poll() is not None:
                raise AssertionError(f"qmail-send failed while waiting for {what}:\n{log[-3000:]}")
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{log[-3000:]}")
            time.sleep(0.2)

    def successes(self) -> int:
        return self.log().count(": success: ")

    def hup(self) -> None:
        """qmail-start runs qmail-send in its own process: signal that."""
        os.kill(self.proc.pid, signal.SIGHUP)

    def pid(self, name: str) -> int | None:
        """qmail-send itself, or one of its children (qmail-lspawn, qmail-rspawn, qmail-clean)."""
        if name == "qmail-send":
            return self.proc.pid
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            comm = text[text.index("(") + 1:text.rindex(")")]
            ppid = int(text[text.rindex(")") + 2:].split()[1])
            if comm == name and ppid == self.proc.pid:
                return int(stat.parent.name)
        return None

    def wait_log(self, needle: str, timeout: float = 30) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.log():
                return True
            time.sleep(0.1)
        return False

    def log(self) -> str:
        return self.logpath.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # qmail-send exits cleanly on TERM
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self._log.close()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def proc_cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of a live process so far, or (children=True) of
    the children it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11  # cutime, cstime / utime, stime
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def descriptors_short(n: int) -> str | None:
    """None when this process and its children may open n descriptors, the
    hard limit raised to n where the kernel allows it (root with
    CAP_SYS_RESOURCE); else why not (containers often stop at 1024 or 4096)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard >= n:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, n))
        return None
    except (ValueError, OSError):
        return (f"needs a hard descriptor limit of at least {n}; it is {hard} here and cannot be raised "
                f"(ulimit -Hn {n} as root, or LimitNOFILE={n} for a container or service)")


def need_descriptors(n: int) -> None:
    """Skip the calling test, with the reason (make test's summary lists
    it, naming the test), unless n descriptors may be opened."""
    reason = descriptors_short(n)
    if reason:
        import pytest
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
        pytest.skip(f"{test}: {reason}")


def max_fd(pid: int) -> int:
    """The highest descriptor a live process has open (-1 if none)."""
    try:
        return max((int(n) for n in os.listdir(f"/proc/{pid}/fd")), default=-1)
    except (FileNotFoundError, ProcessLookupError):
        return -1


def queue_message(sender: str, rcpts, body: bytes, home: Path = HOME) -> None:
    """Queue one message with qmail-queue itself: body on fd 0, envelope on 1."""
    envelope = (f"F{sender}\0" + "".join(f"T{r}\0" for r in rcpts) + "\0").encode()
    with tempfile.TemporaryFile() as env:
        env.write(envelope)
        env.seek(0)
        r = subprocess.run([str(home / "bin/qmail-queue")], input=body, stdout=env, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"qmail-queue exited {r.returncode}")


def queue_messages(messages, home: Path = HOME, parallel: int = 8) -> None:
    """messages: iterable of (sender, rcpts, body); several qmail-queue at once."""
    with ThreadPoolExecutor(parallel) as pool:
        for f in [pool.submit(queue_message, s, r, b, home) for s, r, b in messages]:
            f.result()


def recorded_deliveries(record: Path) -> list[tuple[str, str]]:
    """A sink's record: one (X-Sink-Id, recipient) per delivery it accepted."""
    try:
        text = record.read_text()
    except FileNotFoundError:
        return []
    return [tuple(line.split(" ", 1)) for line in text.splitlines() if line]


class SmtpSink:
    """tests/smtp/smtp_sink.py in a process of its own, on 127.0.0.1.

    hold: seconds each session is held after its message, before "250".
    release() lets the sessions held now go, hold_nobody() every session
    from now on. Each accepted delivery is recorded as (X-Sink-Id of the
    message, recipient)."""

    PROGRAM = Path(__file__).resolve().parent / "smtp_sink.py"

    def __init__(self, hold: float = 0.0, name: str = "sink"):
        stem = LOGS / f"{name}-{os.getpid()}-{time.monotonic_ns()}"
        self.record = stem.with_suffix(".record")
        self.summary_path = stem.with_suffix(".summary")
        self.status_path = stem.with_suffix(".status")
        self.hold = hold
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.summary: dict | None = None

    def start(self) -> "SmtpSink":
        LOGS.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, str(self.PROGRAM), "--record", str(self.record),
             "--summary", str(self.summary_path), "--status", str(self.status_path),
             "--hold", str(self.hold)],
            stdout=subprocess.PIPE, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("smtp_sink did not start")
        self.port = int(line)
        return self

    def route(self, control: "Control") -> None:
        """Send every remote delivery to the sink (control/smtproutes)."""
        control.write("smtproutes", f":127.0.0.1:{self.port}\n")

    def status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, ValueError):
            return {"open": 0, "held": 0, "peak": 0, "peak_held": 0, "accepted": 0}

    def release(self) -> None:
        os.kill(self.proc.pid, signal.SIGUSR1)

    def hold_nobody(self) -> None:
        os.kill(self.proc.pid, signal.SIGUSR2)

    def deliveries(self) -> list[tuple[str, str]]:
        return recorded_deliveries(self.record)

    def stop(self) -> dict | None:
        if self.proc is None:
            return self.summary
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.proc = None
        try:
            self.summary = json.loads(self.summary_path.read_text())
        except (FileNotFoundError, ValueError):
            self.summary = None
        return self.summary

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def local_maildir(home: Path = HOME, user: str = "alias") -> Path:
    """Route every local address to one Maildir owned by `user`.

    users/assign sends all local parts to HOME/testmail, whose .qmail-default
    delivers into HOME/testmail/Maildir/. Returns the Maildir path."""
    pw = pwd.getpwnam(user)
    base = home / "testmail"
    if base.exists():
        shutil.rmtree(base)
    for sub in ("Maildir/new", "Maildir/cur", "Maildir/tmp"):
        (base / sub).mkdir(parents=True)
    (base / ".qmail-default").write_text("./Maildir/\n")
    for p in [base, *base.rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid)
    os.chmod(base / ".qmail-default", 0o644)
    (home / "users/assign").write_text(f"+:{user}:{pw.pw_uid}:{pw.pw_gid}:{base}:-::\n.\n")
    subprocess.run([str(home / "bin/qmail-newu")], check=True)
    return base / "Maildir"


def reset_users(home: Path = HOME) -> None:
    """Undo local_maildir(): no users/assign, no users/cdb, no test Maildir."""
    for name in ("users/assign", "users/cdb"):
        (home / name).unlink(missing_ok=True)
    shutil.rmtree(home / "testmail", ignore_errors=True)


def reset_throttle(home: Path = HOME) -> Path:
    """An empty state directory for the relay limits, as make install leaves
    it: throttle/, owned by qmaild, mode 0700."""
    d = home / "throttle"
    subprocess.run(["umount", "-q", str(d)], capture_output=True)  # a test's tmpfs
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(mode=0o700)
    os.chown(d, *uid_gid())
    os.chmod(d, 0o700)
    return d


def wait_for(predicate, timeout: float = 60, interval: float = 0.05):
    """predicate()'s first true value, polled until `timeout` seconds have
    passed; then its last value. The machine may be slow and shared: the
    default timeout only bounds a failure."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    return predicate()
