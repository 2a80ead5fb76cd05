"""Store and table faults follow control/throttlefail: fail-open (the
default: the recipient is accepted) or fail-closed (451 4.3.0), always with a
log line, never a crash or a hang."""

import os
import socket
import subprocess
import time

import pytest

import qmail_harness as qh
import relaylimits as rl

CLOSED_REPLY = b"451 4.3.0 relay limits are temporarily unavailable, try again later\r\n"


def policy(qmail, closed: bool) -> None:
    if closed:
        qmail.control.write("throttlefail", "closed\n")


def relay_three(srv) -> list[bytes]:
    s = rl.session(srv, timeout=60)
    t0 = time.monotonic()
    s.cmd("MAIL FROM:<a@client.example>")
    replies = rl.rcpts(s, rl.far(3))
    # a fault costs no wait: recipients that each waited for the store's
    # lock timeout (2 s) would take 6 s; they take milliseconds
    assert time.monotonic() - t0 < 5
    assert s.cmd("QUIT").startswith(b"221 ")  # the session goes on
    s.close()
    return replies


@pytest.mark.parametrize("closed", [False, True], ids=["fail-open", "fail-closed"])
def test_a_store_that_cannot_be_opened(qmail, closed):
    policy(qmail, closed)
    rl.table(qmail, "default rcpt=1/1h\n")
    d = qh.HOME / "throttle"
    os.chown(d, 0, 0)  # qmail-smtpd (qmaild) may not create its files there
    srv = qmail.smtpd(env=rl.RELAY)
    replies = relay_three(srv)
    if closed:
        assert replies == [CLOSED_REPLY] * 3
    else:
        assert replies == [b"250 ok\r\n"] * 3
    log = srv.log()
    assert "qmail-smtpd: throttle: store fault ip 127.0.0.1 charge: unavailable (" in log
    assert log.rstrip().endswith(": fail-closed" if closed else ": fail-open")
    assert "non-local" not in log and "Segmentation" not in log


@pytest.mark.parametrize("closed", [False, True], ids=["fail-open", "fail-closed"])
def test_a_full_store(qmail, closed):
    """The disk under throttle/ fills up: a small tmpfs, and every client
    address its own budget (127.0.0.0/8 each) until no new one fits."""
    policy(qmail, closed)
    rl.table(qmail, "127.0.0.0/8 each rcpt=5/1h\n")
    d = qh.HOME / "throttle"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k,mode=0700", "tmpfs", str(d)], check=True)
    try:
        os.chown(d, *qh.uid_gid())
        srv = qmail.smtpd(env=rl.RELAY)
        first_fault = None
        for i in range(2, 2000):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60,
                                            source_address=(f"127.0.{i // 250}.{i % 250 + 1}", 0))
            s = qh.Session(sock)
            s.reply()
            s.cmd("HELO client.example")
            s.cmd("MAIL FROM:<a@client.example>")
            reply = s.cmd("RCPT TO:<x@far.example>")
            s.cmd("QUIT")
            s.close()
            if reply != b"250 ok\r\n":
                first_fault = (i, reply)
                break
            if "store fault" in srv.log():
                first_fault = (i, reply)
                break
        assert first_fault is not None, "the store never filled up"
        assert first_fault[1] == (CLOSED_REPLY if closed else b"250 ok\r\n")
        assert qh.wait_for(lambda: "store fault" in srv.log())
        log = srv.log()
        assert "qmail-smtpd: throttle: store fault ip 127.0." in log
        assert " charge: full (" in log
        assert (": fail-closed\n" if closed else ": fail-open\n") in log
        # clients that already have counters keep them: limits still apply
        s = qh.Session(socket.create_connection(("127.0.0.1", srv.port), timeout=60,
                                                source_address=("127.0.0.3", 0)))
        s.reply()
        s.cmd("HELO client.example")
        s.cmd("MAIL FROM:<a@client.example>")
        assert rl.accepted(rl.rcpts(s, rl.far(6))) == 5
        s.close()
        srv.stop()
    finally:
        subprocess.run(["umount", "-l", str(d)], check=True)


@pytest.mark.parametrize("closed", [False, True], ids=["fail-open", "fail-closed"])
def test_a_corrupt_table(qmail, closed):
    policy(qmail, closed)
    qmail.control.write("spamt.cdb", b"\xff" * 3000)
    srv = qmail.smtpd(env=rl.RELAY)
    replies = relay_three(srv)
    assert replies == ([CLOSED_REPLY] * 3 if closed else [b"250 ok\r\n"] * 3)
    log = srv.log()
    assert "qmail-smtpd: throttle: table fault ip 127.0.0.1 control/spamt.cdb: " in log
    assert (": fail-closed\n" if closed else ": fail-open\n") in log
    assert log.count("table fault") == 1  # once per session, not per recipient


@pytest.mark.parametrize("closed", [False, True], ids=["fail-open", "fail-closed"])
def test_a_corrupt_store_and_its_repair(qmail, closed):
    policy(qmail, closed)
    rl.table(qmail, "default rcpt=2/1h\n")
    srv = qmail.smtpd(env=rl.RELAY)
    assert rl.accepted(relay_three(srv)) == 2
    (data,) = (qh.HOME / "throttle").glob("*/data.mdb")
    data.write_bytes(b"\x5a" * data.stat().st_size)
    replies = relay_three(srv)
    assert replies == ([CLOSED_REPLY] * 3 if closed else [b"250 ok\r\n"] * 3)
    log = srv.log()
    assert "qmail-smtpd: throttle: store fault ip 127.0.0.1 charge: corrupt (" in log
    bad = rl.throttlectl("show", "127.0.0.1", check=False)
    assert bad.returncode == 111 and "store corrupt" in bad.stderr
    out = rl.throttlectl("repair").stdout
    assert out.startswith("store set aside as ")
    # a fresh store: limits apply again
    assert relay_three(srv) == [b"250 ok\r\n"] * 2 + [rl_limit_reply()]


def rl_limit_reply() -> bytes:
    return (b"451 4.7.1 relay limit reached: recipients per 1h for address 127.0.0.1; "
            b"try again in about 61 minutes\r\n")
