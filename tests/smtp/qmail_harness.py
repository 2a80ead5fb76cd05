"""qmail_harness: start and always stop real qmail programs for tests.

Everything runs against the throwaway installation that `make test-install`
puts under build/test/home (QT_HOME), built from build/test/netqmail-1.06
(QT_TREE); QT_STOCK is unpatched netqmail-1.06 built for the same home.

- Control: the control/ directory, reset to a known baseline for every test.
- SmtpServer: qmail-smtpd (patched, or stock) under tcpserver on 127.0.0.1,
  on a free port (tcpserver -1 reports it), its log captured to a file.
  It is a context manager and is also stopped by the `qmail` fixture.
- Queue: what qmail-queue left in the queue while qmail-send is not running.
- QmailSend: qmail-start/qmail-send delivering, for tests that need delivery.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

TOP = Path(os.environ.get("QT_TOP", Path(__file__).resolve().parents[2]))
HOME = Path(os.environ.get("QT_HOME", TOP / "build/test/home"))
TREE = Path(os.environ.get("QT_TREE", TOP / "build/test/netqmail-1.06"))
STOCK = Path(os.environ.get("QT_STOCK", TOP / "build/test/stock/netqmail-1.06"))

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
        self.logpath = log or (TOP / "build/test/logs" / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log")
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self) -> "SmtpServer":
        uid, gid = uid_gid(self.user)
        self.logpath.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.logpath, "wb")
        env = {"PATH": "/usr/bin:/bin"}
        env.update(self.env)
        cmd = ["tcpserver", "-1", "-H", "-R", "-l", "0", "-u", str(uid), "-g", str(gid),
               "-c", str(self.concurrency), *self.tcpserver_opts,
               "127.0.0.1", "0", str(self.smtpd), *self.args]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=self._log,
                                     start_new_session=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"tcpserver did not start: {self.log()}")
        self.port = int(line)
        return self

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

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


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
    """qmail-start (as root) running qmail-send and its helpers; log in a file."""

    def __init__(self, home: Path = HOME, defaultdelivery: str = "./Maildir/"):
        self.home = home
        self.defaultdelivery = defaultdelivery
        self.logpath = TOP / "build/test/logs" / f"qmail-send-{os.getpid()}-{time.monotonic_ns()}.log"
        self.proc = None

    def start(self) -> "QmailSend":
        self.logpath.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.logpath, "wb")
        env = {"PATH": f"{self.home}/bin:/usr/bin:/bin"}
        self.proc = subprocess.Popen([str(self.home / "bin/qmail-start"), self.defaultdelivery, "cat"],
                                     cwd=self.home, env=env, stdout=self._log, stderr=self._log,
                                     start_new_session=True)
        return self

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


def wait_for(predicate, timeout: float = 10, interval: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    return predicate()
