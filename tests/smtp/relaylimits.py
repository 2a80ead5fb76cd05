"""Helpers for the relay-limit tests: the limits table, qmail-throttlectl,
relay clients and what they were told."""

from __future__ import annotations

import re
import subprocess
import threading

import qmail_harness as qh
import tlsauth as ta

RELAY = {"RELAYCLIENT": ""}


def table(qmail, text: str) -> None:
    """control/spamt, compiled by the installed qmail-newspamt."""
    qmail.control.write("spamt", text)
    r = subprocess.run([str(qh.HOME / "bin/qmail-newspamt"), "-d", str(qh.HOME)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def throttlectl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(qh.HOME / "bin/qmail-throttlectl"), "-d", str(qh.HOME), *args],
                       capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def used(identity: str, metric: str = "rcpt") -> int:
    """What qmail-throttlectl show says is used of `metric` (0: nothing)."""
    out = throttlectl("show", identity).stdout
    m = re.search(rf"^ +{metric} per \S+: (\d+) used", out, re.M)
    return int(m.group(1)) if m else 0


def session(srv: qh.SmtpServer, helo: bool = True, timeout: float = 30) -> qh.Session:
    s = ta.connect(srv, timeout=timeout)
    if helo:
        assert s.cmd("HELO client.example").startswith(b"250 ")
    return s


def auth_session(srv: qh.SmtpServer, user: str, password: str, timeout: float = 30) -> qh.Session:
    """STARTTLS, then AUTH PLAIN as user."""
    s = ta.connect(srv, timeout=timeout)
    assert s.cmd("EHLO client.example").startswith(b"250")
    t = ta.starttls(s)
    assert t.cmd("EHLO client.example").startswith(b"250")
    reply = t.cmd("AUTH PLAIN " + ta.plain(user, password))
    assert reply.startswith(b"235 "), reply
    return t


def rcpts(s: qh.Session, addresses) -> list[bytes]:
    """RCPT TO for each address; the replies."""
    return [s.cmd(f"RCPT TO:<{a}>") for a in addresses]


def far(n: int, start: int = 0, domain: str = "far.example") -> list[str]:
    return [f"r{i}@{domain}" for i in range(start, start + n)]


def data(s: qh.Session, body: str = "Subject: test\r\n\r\nhello\r\n") -> bytes:
    assert s.cmd("DATA").startswith(b"354 ")
    return s.cmd(body + ".")


def accepted(replies) -> int:
    return sum(1 for r in replies if r.startswith(b"250 "))


# tcpserver listens with a backlog of 20: a hundred connects at once would
# overflow it (the kernel then drops handshakes silently); connect a few at a
# time, then start the recipients together.
CONNECTING = threading.Semaphore(8)


def relay_run(open_session, n_rcpts: int, start: threading.Barrier | None = None):
    """One session (open_session() connects and greets): MAIL, n_rcpts relayed
    recipients as fast as the server answers, DATA when any was accepted.
    Returns (accepted, the reply to the message: b"" when there was none),
    or the exception's text (and breaks start)."""
    try:
        with CONNECTING:
            s = open_session()
        if start is not None:
            start.wait(timeout=60)
        s.cmd("MAIL FROM:<a@client.example>")
        got = accepted(rcpts(s, far(n_rcpts)))
        reply = data(s) if got else b""
        s.cmd("QUIT")
        s.close()
        return got, reply
    except (OSError, AssertionError) as e:
        if start is not None:
            start.abort()
        return repr(e)
