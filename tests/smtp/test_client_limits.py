"""Client limits at the greeting (spamt(5), CLIENT LIMITS; patch 0070):
conn= counts sessions at once per client and frees a place the moment a
session ends, also when its qmail-smtpd is SIGKILLed."""

import os
import signal

import qmail_harness as qh
import relaylimits as rl

TOO_MANY = b"421 4.7.0 too many connections from 127.0.0.1\r\n"


def greet(srv: qh.SmtpServer) -> tuple[qh.Session, bytes]:
    s = qh.Session(srv.connect())
    return s, s.reply()


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


def test_nothrottle_is_never_counted(qmail):
    rl.table(qmail, "default conn=1\n")
    greet_all(qmail.smtpd(env={"NOTHROTTLE": "1"}), 3)
