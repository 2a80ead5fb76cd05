"""Clients for the teergrube tests and benchmark: offenders from
127.0.1.0/24 that stop at DATA, and a primer that makes their group's wait
large."""

from __future__ import annotations

import socket
import time

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


def prime(srv) -> None:
    """Two offender messages back to back: the second makes the group's wait
    large (and is abandoned at once), so every offender after it is held."""
    s = offender_session(srv, 0)
    assert s.reply() == b"354 go ahead\r\n"
    s.cmd("Subject: x\r\n\r\nx\r\n.")
    s.cmd("MAIL FROM:<bot@spam.example>")
    s.cmd("RCPT TO:<u@test.example>")
    s.send("DATA\r\n")
    time.sleep(0.3)
    s.close()
