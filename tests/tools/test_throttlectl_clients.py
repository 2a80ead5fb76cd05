"""qmail-throttlectl and the client limits (spamt(5), CLIENT LIMITS): show
counts a client's connections in use on this host (the slot files of
throttle/conn/, without taking a slot) and lists its rate counters with the
table's limits; expire sweeps slot files that SIGKILLed sessions left.
Real qmail-smtpd sessions under tcpserver, as installed (the qmail and
any_store fixtures are tests/smtp's, conftest.py)."""

from __future__ import annotations

import os
import re
import signal
import socket

import qmail_harness as qh
import relaylimits as rl

CONN_DIR = qh.HOME / "throttle/conn"


def greeted(srv: qh.SmtpServer, source: str = "127.0.0.1") -> qh.Session:
    """A session from `source` (any 127/8 address reaches 127.0.0.1), greeted."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60, source_address=(source, 0))
    s = qh.Session(sock)
    first = s.reply()
    assert first.startswith(b"220 "), first
    return s


def show(identity: str) -> str:
    return rl.throttlectl("show", identity).stdout


def in_use_line(identity: str) -> str | None:
    m = re.search(r"^    connections: .*$", show(identity), re.M)
    return m.group(0) if m else None


def test_show_counts_connections_in_use_and_none_once_they_close(qmail):
    rl.table(qmail, "default conn=3\n127.0.0.2 exempt\n")
    srv = qmail.smtpd()
    held = [greeted(srv), greeted(srv)]
    try:
        out = show("127.0.0.1")
        assert out == ("address 127.0.0.1:\n"
                       "  client limits from default (control/spamt:1), counted as address 127.0.0.1:\n"
                       "    connections: 2 of 3 in use on this host\n")
        # counting took no slot: a third session still gets in, a fourth not
        held.append(greeted(srv))
        assert in_use_line("127.0.0.1") == "    connections: 3 of 3 in use on this host"
        s = qh.Session(srv.connect())
        assert s.reply() == b"421 4.7.0 too many connections from 127.0.0.1\r\n"
        s.close()
    finally:
        for s in held:
            s.close()
    # each qmail-smtpd sees its client go, and its place is free when it exits
    assert qh.wait_for(lambda: in_use_line("127.0.0.1") == "    connections: 0 of 3 in use on this host")
    assert qh.wait_for(lambda: not srv.children())
    assert not (CONN_DIR / "a=127.0.0.1").exists()  # the last one removed the file
    assert show("127.0.0.2") == ("address 127.0.0.2: nothing counted\n"
                                 "  client limits: exempt, from 127.0.0.2 (control/spamt:2)\n")


def test_show_lists_rate_counters_with_the_tables_limits(qmail, any_store):
    rl.table(qmail, "default connrate=5/1h,50/1d inmsg=10/1h authrate=3/1m\n")
    srv = qmail.smtpd()
    for _ in range(4):
        s = greeted(srv)
        assert s.cmd("QUIT").startswith(b"221 ")
        s.close()
    out = show("127.0.0.1").splitlines()
    assert out[:2] == ["address 127.0.0.1:",
                       "  client limits from default (control/spamt:1), counted as address 127.0.0.1:"]
    assert re.fullmatch(r"    conn per 1h: 4 used of 5, 1 left, next frees in \S+", out[2]), out
    assert re.fullmatch(r"    conn per 1d: 4 used of 50, 46 left, next frees in \S+", out[3]), out
    # the other rates, with what the table allows (nothing charged: no mail, no AUTH)
    assert out[4:] == ["    auth per 1m: 0 used of 3, 3 left", "    inmsg per 1h: 0 used of 10, 10 left"]
    # a fifth session is the last the hour allows
    greeted(srv).close()
    assert "    conn per 1h: 5 used of 5, 0 left" in show("127.0.0.1")
    top = rl.throttlectl("top", "-n", "1", "conn").stdout
    assert re.fullmatch(r"address 127\.0\.0\.1 conn per 1[hd]: 5 used of (5|50), \d+ left, next frees in \S+\n", top)


def test_show_finds_a_blocks_shared_count(qmail):
    # no `each`: the block shares one count, under its network key
    rl.table(qmail, "default conn=50\n127.0.0.0/8 conn=2 connrate=9/1h\n")
    srv = qmail.smtpd()
    held = [greeted(srv, "127.0.0.2")]
    try:
        s = greeted(srv, "127.0.0.3")
        assert s.cmd("QUIT").startswith(b"221 ")
        s.close()
        out = show("127.0.0.1").splitlines()
        assert out[0] == "address 127.0.0.1: nothing counted"
        assert out[1] == "  client limits from 127.0.0.0/8 (control/spamt:2), counted as network 127.0.0.0/8:"
        assert out[2] in ("    connections: 1 of 2 in use on this host", "    connections: 2 of 2 in use on this host")
        assert re.fullmatch(r"    conn per 1h: 2 used of 9, 7 left, next frees in \S+", out[3]), out
        assert len(out) == 4
        assert qh.wait_for(lambda: in_use_line("127.0.0.1") == "    connections: 1 of 2 in use on this host")
    finally:
        for s in held:
            s.close()


def test_expire_sweeps_a_file_a_sigkilled_session_left_and_keeps_one_in_use(qmail):
    rl.table(qmail, "default conn=3\n")
    srv = qmail.smtpd()
    assert rl.throttlectl("expire").stdout == "0 idle entries removed\n"  # no throttle/conn yet
    left = greeted(srv, "127.0.0.2")
    pid = qh.wait_for(lambda: srv.children())[0]
    os.kill(pid, signal.SIGKILL)
    assert left.rest() == b""
    left.close()
    assert qh.wait_for(lambda: not srv.children())
    assert (CONN_DIR / "a=127.0.0.2").exists()  # nobody ended after it to remove it
    assert in_use_line("127.0.0.2") == "    connections: 0 of 3 in use on this host"
    held = greeted(srv)
    try:
        assert rl.throttlectl("expire").stdout == ("0 idle entries removed\n"
                                                   "1 unused connection slot file removed, 1 in use\n")
        assert not (CONN_DIR / "a=127.0.0.2").exists()
        assert (CONN_DIR / "a=127.0.0.1").exists()
        # the kept file still counts the held session, and lets two more in
        assert in_use_line("127.0.0.1") == "    connections: 1 of 3 in use on this host"
        more = [greeted(srv), greeted(srv)]
        s = qh.Session(srv.connect())
        assert s.reply() == b"421 4.7.0 too many connections from 127.0.0.1\r\n"
        s.close()
        for m in more:
            m.close()
    finally:
        held.close()
    assert qh.wait_for(lambda: not srv.children())
    assert rl.throttlectl("expire").stdout == "0 idle entries removed\n0 unused connection slot files removed, 0 in use\n"
