"""The teergrube under load: 200 delayed connections held while normal
clients are served, and the global budget that keeps offenders from taking
every connection slot of tcpserver.

Whether a client was held is read from what it got (a held offender gets
"354-" lines, tg=5, before its 354) and from the log, not from a clock; the
tests wait for states (sessions held, slots taken), not for fixed times."""

import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import qmail_harness as qh
import relaylimits as rl
import teergrube_clients as tc

# Offenders come from 127.0.1.0/24 and share one teergrube state (group), so
# after the first message every offender is delayed; normal clients come
# from 127.0.0.1, which has no entry.
OFFENDERS = '127.0.1.0/24 st=20000 stmax=30000 tg=5 group=bots\n'


# A normal session is served in milliseconds; held, it would take stmax (30
# s). Half of that is the bound: only a normal client that was held (or
# found no slot until one was freed) gets there.
NORMAL_BOUND = 15.0


def normal_session(srv) -> float:
    t0 = time.monotonic()
    s = rl.session(srv, timeout=60)
    s.cmd("MAIL FROM:<friend@client.example>")
    assert s.cmd("RCPT TO:<u@test.example>").startswith(b"250 ")
    assert s.cmd("DATA") == b"354 go ahead\r\n"
    assert s.cmd("Subject: hi\r\n\r\nnormal mail\r\n.").startswith(b"250 ok ")
    s.cmd("QUIT")
    s.close()
    return time.monotonic() - t0


def clients_left(srv) -> int:
    """Held sessions that ended because their client left."""
    return len(re.findall(r": (client closed|connection reset)\n", srv.log()))


def normal_clients_were_never_held(srv) -> bool:
    return not re.search(r"teergrube ip 127\.0\.0\.1 ", srv.log())


def test_200_delayed_connections_are_held_while_normal_clients_are_served(qmail):
    rl.table(qmail, OFFENDERS)
    qmail.control.write("tarpitbudget", "250\n")
    srv = qmail.smtpd(concurrency=260)
    tc.prime(srv)
    held = []
    connecting = threading.Semaphore(8)  # tcpserver's listen backlog is 20

    def connect(i):
        with connecting:
            return tc.offender_session(srv, i + 1)

    with ThreadPoolExecutor(32) as pool:
        held = list(pool.map(connect, range(200)))
    try:
        assert qh.wait_for(lambda: len(srv.children()) >= 200)
        # the budget's slots: one per delayed session
        assert qh.wait_for(lambda: tc.held(200) == 200), (tc.held(200), srv.log()[-600:])
        # the 200 are waiting for their 354; normal clients get through
        times = [normal_session(srv) for _ in range(20)]
        assert max(times) < NORMAL_BOUND, times
        assert normal_clients_were_never_held(srv)
        for s in held:  # nobody got its 354 yet
            s.sock.setblocking(False)
            try:
                data = s.sock.recv(100, socket.MSG_PEEK)
            except BlockingIOError:
                data = b""
            assert b"354 " not in data, data
            s.sock.setblocking(True)
    finally:
        for s in held:
            s.close()
    # every held process notices its client left and exits (a client that
    # closed with "354-" lines unread sent a reset instead of a FIN)
    assert qh.wait_for(lambda: len(srv.children()) == 0)
    assert qh.wait_for(lambda: clients_left(srv) == 201), (clients_left(srv), srv.log()[-600:])


def test_the_budget_keeps_slots_free_for_normal_clients(qmail):
    """tcpserver -c 50, a budget of 20, 60 offenders sending as fast as they
    can: at most 20 are held at a time, the rest are answered at once (and
    leave), and normal clients still get in."""
    rl.table(qmail, OFFENDERS)
    qmail.control.write("tarpitbudget", "20\n")
    srv = qmail.smtpd(concurrency=50)
    tc.prime(srv)
    stop = threading.Event()
    lock = threading.Lock()
    open_sessions = {}
    answered_at_once = [0]

    def offender(i):
        while not stop.is_set():
            try:
                s = tc.offender_session(srv, i, timeout=40)
            except (OSError, AssertionError):
                continue
            with lock:
                open_sessions[i] = s
            try:
                reply = s.reply()
                if reply == b"354 go ahead\r\n":  # held, it would have had "354-" lines first
                    s.cmd("Subject: x\r\n\r\nx\r\n.")
                    with lock:
                        answered_at_once[0] += 1
            except OSError:
                pass
            finally:
                with lock:
                    open_sessions.pop(i, None)
                s.close()

    most_held = 0
    with ThreadPoolExecutor(60) as pool:
        futures = [pool.submit(offender, i + 1) for i in range(60)]
        try:
            # held(25) looks past the budget's 20 slots: never more are held
            assert qh.wait_for(lambda: tc.held(25) >= 20), (tc.held(25), srv.log()[-600:])
            times = []
            for _ in range(10):
                most_held = max(most_held, tc.held(25))
                times.append(normal_session(srv))
            # offenders past the budget are answered at once, and leave
            assert qh.wait_for(lambda: answered_at_once[0] > 20), answered_at_once
            most_held = max(most_held, tc.held(25))
        finally:
            stop.set()
            with lock:  # the held offenders give up
                for s in open_sessions.values():
                    try:
                        s.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        for f in futures:
            f.result(timeout=60)
    assert max(times) < NORMAL_BOUND, times
    assert normal_clients_were_never_held(srv)
    assert most_held == 20  # the budget is used, and never exceeded
    log = srv.log()
    assert " waited 0ms: over budget 20\n" in log
