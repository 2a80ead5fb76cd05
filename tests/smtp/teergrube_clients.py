"""Clients for the teergrube tests and benchmark: offenders from
127.0.1.0/24 that stop at DATA, a primer that makes their group's wait
large, and how many sessions the teergrube holds."""

from __future__ import annotations

import fcntl
import socket
import struct

import qmail_harness as qh


def offender_session(srv, i: int, timeout: float = 60) -> qh.Session:
    """Connect from 127.0.1.x and send a message up to DATA; the session is
    left waiting for its 354."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout,
                                    source_address=(f"127.0.1.{i % 250 + 1}", 0))
    s = qh.Session(sock)
    assert s.reply().startswith(b"220 ")
    s.cmd("HELO bot.example")
    s.cmd("MAIL FROM:<bot@spam.example>")
    s.cmd("RCPT TO:<u@test.example>")
    s.send("DATA\r\n")
    return s


def held(budget: int, home=qh.HOME) -> int:
    """How many of the budget's slots (throttle/tarpit.slots) are locked now:
    the sessions being delayed."""
    n = 0
    try:
        f = open(home / "throttle/tarpit.slots", "rb+")
    except FileNotFoundError:
        return 0
    with f:
        for i in range(budget):
            req = struct.pack("hh4xqqi4x", fcntl.F_WRLCK, 0, i, 1, 0)
            res = fcntl.fcntl(f.fileno(), fcntl.F_GETLK, req)
            if struct.unpack("hh4xqqi4x", res)[0] != fcntl.F_UNLCK:
                n += 1
    return n


def prime(srv) -> None:
    """Two offender messages back to back: the second makes the group's wait
    large (and is abandoned once the server holds it), so every offender
    after it is held."""
    s = offender_session(srv, 0)
    assert s.reply() == b"354 go ahead\r\n"
    s.cmd("Subject: x\r\n\r\nx\r\n.")
    s.cmd("MAIL FROM:<bot@spam.example>")
    s.cmd("RCPT TO:<u@test.example>")
    s.send("DATA\r\n")
    assert qh.wait_for(lambda: held(1) == 1), "the second message was not held"  # the first free slot
    s.close()
