"""Client limits at the greeting (spamt(5), CLIENT LIMITS; patch 0070):
conn= counts sessions at once per client and frees a place the moment a
session ends, also when its qmail-smtpd is SIGKILLed; connrate= counts new
sessions, not open ones; a CIDR entry's block shares one count unless
`each`; IPv6 clients share one per /64 (qmail-smtpd behind
tests/smtp/tcp6server.py in a network namespace of the test's own); exempt
clients and NOTHROTTLE sessions are never counted. Clients other than
127.0.0.1 bind their source address on loopback (all of 127.0.0.0/8 is
this host's on Linux)."""

import os
import signal

import pytest

import qmail_harness as qh
import relaylimits as rl

TOO_MANY = b"421 4.7.0 too many connections from 127.0.0.1\r\n"


def too_many(ip: str) -> bytes:
    return f"421 4.7.0 too many connections from {ip}\r\n".encode()


def greet(srv: qh.SmtpServer) -> tuple[qh.Session, bytes]:
    s = qh.Session(srv.connect())
    return s, s.reply()


class Clients:
    """New sessions of a test: the greeted ones are held open until close()
    (the fixture-like end of every test, also on failure); a refused one
    must be ended by the server."""

    def __init__(self):
        self.held: list[qh.Session] = []

    def open(self, sock) -> bytes:
        """A session over a new connection; the server's first reply."""
        s = qh.Session(sock)
        first = s.reply()
        if first.startswith(b"220 "):
            self.held.append(s)
        else:
            assert s.rest() == b"", first
            s.close()
        return first

    def close(self) -> None:
        for s in self.held:
            s.close()
        self.held.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def enter_when_one_is_gone(srv: qh.SmtpServer) -> qh.Session:
    """Once two qmail-smtpd are left, a new session is greeted and the one
    after it gets the 421 again."""
    assert qh.wait_for(lambda: len(srv.children()) == 2)
    s, first = greet(srv)
    assert first.startswith(b"220 ")
    extra, first = greet(srv)
    assert first == TOO_MANY
    extra.close()
    return s


def greet_all(srv: qh.SmtpServer, n: int) -> None:
    """n sessions at once, every one greeted with a 220."""
    held = []
    try:
        for _ in range(n):
            s, first = greet(srv)
            held.append(s)
            assert first.startswith(b"220 ")
    finally:
        for s in held:
            s.close()


def test_conn_3_lets_three_of_six_in_and_a_closed_one_frees_its_place_at_once(qmail):
    rl.table(qmail, "default conn=3\n")
    assert (qh.HOME / "control/spamt.clients").exists()
    srv = qmail.smtpd()
    held = []
    try:
        refused = 0
        for _ in range(6):
            s, first = greet(srv)
            if first.startswith(b"220 "):
                held.append(s)
            else:
                assert first == TOO_MANY
                assert s.rest() == b""  # and the session ends
                s.close()
                refused += 1
        assert len(held) == 3 and refused == 3
        log = srv.log()
        assert log.count("qmail-smtpd: throttle: client limit address 127.0.0.1 ip 127.0.0.1 conn 3/3: 421\n") == 3
        # QUIT one: as soon as its qmail-smtpd is gone (the client may see the
        # close a moment before the process has ended), a new one gets in; no
        # expiry to wait for
        assert held[0].cmd("QUIT").startswith(b"221 ")
        assert held.pop(0).rest() == b""
        held.append(enter_when_one_is_gone(srv))
        # SIGKILL one qmail-smtpd: its place is free as soon as it is gone
        os.kill(srv.children()[0], signal.SIGKILL)
        held.append(enter_when_one_is_gone(srv))
    finally:
        for s in held:
            s.close()


def test_without_client_limits_no_flag_and_every_session_is_greeted(qmail):
    rl.table(qmail, "default rcpt=3/1h\n10.0.0.0/8 exempt\n")
    assert not (qh.HOME / "control/spamt.clients").exists()
    greet_all(qmail.smtpd(), 6)
    assert not (qh.HOME / "throttle/conn").exists()


def test_nothrottle_sessions_are_never_counted(qmail):
    rl.table(qmail, "default conn=1 connrate=2/1h\n")
    with Clients() as c:
        free = qmail.smtpd(env={"NOTHROTTLE": "1"})
        for _ in range(3):  # over conn= and connrate= at once
            assert c.open(free.connect()).startswith(b"220 ")
        # the same client at a server without NOTHROTTLE: nothing was counted
        srv = qmail.smtpd()
        assert c.open(srv.connect()).startswith(b"220 ")
        assert c.open(srv.connect()) == TOO_MANY
    assert "client limit" not in free.log()


def test_connrate_counts_new_sessions_exactly_not_open_ones(qmail):
    rl.table(qmail, "default connrate=3/1h\n")
    srv = qmail.smtpd()
    with Clients() as c:
        # three at once are in: connrate= does not count sessions at once
        for _ in range(3):
            assert c.open(srv.connect()).startswith(b"220 ")
        # closing them gives nothing back: the fourth new session is refused,
        # and so is the fifth (the window is an hour)
        for s in c.held[1:]:
            assert s.cmd("QUIT").startswith(b"221 ")
        for _ in range(2):
            first = c.open(srv.connect())
            assert first.startswith(b"421 4.7.0 too many connections from 127.0.0.1; try again in "), first
        # the session still open goes on
        assert c.held[0].cmd("EHLO client.example").startswith(b"250")
    log = srv.log()
    assert log.count("qmail-smtpd: throttle: client limit address 127.0.0.1 ip 127.0.0.1 "
                     "connrate 3/3 per 1h: 421\n") == 2, log


def test_cidr_block_shares_one_count_unless_each(qmail):
    rl.table(qmail, "127.0.0.0/24 conn=2\n127.0.1.0/24 conn=2 each\n")
    srv = qmail.smtpd()
    with Clients() as c:
        # 127.0.0.0/24: one count for the block, whoever the client is
        assert c.open(qh.connect_from("127.0.0.2", srv.port)).startswith(b"220 ")
        assert c.open(qh.connect_from("127.0.0.3", srv.port)).startswith(b"220 ")
        assert c.open(qh.connect_from("127.0.0.4", srv.port)) == too_many("127.0.0.4")
        assert c.open(qh.connect_from("127.0.0.2", srv.port)) == too_many("127.0.0.2")
        # 127.0.1.0/24 each: two for every address of the block
        for ip in ("127.0.1.2", "127.0.1.3"):
            for _ in range(2):
                assert c.open(qh.connect_from(ip, srv.port)).startswith(b"220 ")
        assert c.open(qh.connect_from("127.0.1.2", srv.port)) == too_many("127.0.1.2")
    log = srv.log()
    assert "throttle: client limit network 127.0.0.0/24 ip 127.0.0.4 conn 2/2: 421\n" in log, log
    assert "throttle: client limit address 127.0.1.2 ip 127.0.1.2 conn 2/2: 421\n" in log, log


def test_exempt_on_a_more_specific_entry_is_never_counted(qmail):
    rl.table(qmail, "127.0.0.0/24 conn=1 connrate=3/1h\n127.0.0.5 exempt\n")
    srv = qmail.smtpd()
    with Clients() as c:
        for _ in range(4):  # over conn= and connrate= of its block
            assert c.open(qh.connect_from("127.0.0.5", srv.port)).startswith(b"220 ")
        # the block's count and rate are untouched: another client of it gets
        # the one place, and the next session of the block is refused
        assert c.open(qh.connect_from("127.0.0.6", srv.port)).startswith(b"220 ")
        assert c.open(qh.connect_from("127.0.0.7", srv.port)) == too_many("127.0.0.7")
    assert "ip 127.0.0.5 " not in srv.log()


@pytest.mark.parametrize("table, same, other, block", [
    # the default prefix6: clients of one /64 share the count
    ("default conn=2\n", ("2001:db8:1::a", "2001:db8:1::b", "2001:db8:1::c"), "2001:db8:2::a", "2001:db8:1::/64"),
    # the table's prefix6=48: two /64s of one /48 share it
    ("default conn=2 prefix6=48\n", ("2001:db8:1::a", "2001:db8:1:5::a", "2001:db8:1:6::a"), "2001:db8:2::a",
     "2001:db8:1::/48"),
])
def test_ipv6_clients_share_conn_per_the_tables_prefix6(qmail, table, same, other, block):
    ns = qmail.netns(None, addresses=[f"{a}/64" for a in ("2001:db8:1::1", *same, other)])
    rl.table(qmail, table)
    srv = qmail.smtpd6(ns.name)
    to = "2001:db8:1::1"
    with Clients() as c:
        assert c.open(srv.connect_from(same[0], to)).startswith(b"220 ")
        assert c.open(srv.connect_from(same[1], to)).startswith(b"220 ")
        # a third client of the same block finds its count full
        assert c.open(srv.connect_from(same[2], to)) == too_many(same[2])
        # another block has a count of its own
        for _ in range(2):
            assert c.open(srv.connect_from(other, to)).startswith(b"220 ")
    log = srv.log()
    assert f"throttle: client limit network {block} ip {same[2]} conn 2/2: 421\n" in log, log
    assert other not in log, log
