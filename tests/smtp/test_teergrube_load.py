"""The teergrube under load: 200 delayed connections held while normal
clients are served at full speed, and the global budget that keeps
offenders from taking every connection slot of tcpserver."""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import qmail_harness as qh
import relaylimits as rl
from teergrube_clients import offender_session, prime

# Offenders come from 127.0.1.0/24 and share one teergrube state (group), so
# after the first message every offender is delayed; normal clients come
# from 127.0.0.1, which has no entry.
OFFENDERS = '127.0.1.0/24 st=20000 stmax=30000 tg=5 group=bots\n'


def normal_session(srv) -> float:
    t0 = time.monotonic()
    s = rl.session(srv, timeout=10)
    s.cmd("MAIL FROM:<friend@client.example>")
    assert s.cmd("RCPT TO:<u@test.example>").startswith(b"250 ")
    assert s.cmd("DATA") == b"354 go ahead\r\n"
    assert s.cmd("Subject: hi\r\n\r\nnormal mail\r\n.").startswith(b"250 ok ")
    s.cmd("QUIT")
    s.close()
    return time.monotonic() - t0


def test_200_delayed_connections_are_held_while_normal_clients_are_served(qmail):
    rl.table(qmail, OFFENDERS)
    qmail.control.write("tarpitbudget", "250\n")
    srv = qmail.smtpd(concurrency=260)
    prime(srv)
    held = []
    connecting = threading.Semaphore(8)  # tcpserver's listen backlog is 20

    def connect(i):
        with connecting:
            return offender_session(srv, i + 1)

    with ThreadPoolExecutor(32) as pool:
        held = list(pool.map(connect, range(200)))
    try:
        assert qh.wait_for(lambda: len(qh_children(srv)) >= 200, 20)
        # the 200 are waiting for their 354; normal clients get through at once
        times = [normal_session(srv) for _ in range(20)]
        assert max(times) < 1.0, times
        # the budget's slots: one per delayed session
        assert qh.wait_for(lambda: count_held(200) == 200, 20), (count_held(200), srv.log()[-600:])
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
    # every held process notices its client left and exits
    assert qh.wait_for(lambda: len(qh_children(srv)) == 0, 10)
    assert srv.log().count(": client closed\n") == 201


def count_held(budget: int) -> int:
    """How many slots of throttle/tarpit.slots are locked now."""
    import fcntl
    import struct
    n = 0
    with open(qh.HOME / "throttle/tarpit.slots", "rb+") as f:
        for i in range(budget):
            req = struct.pack("hh4xqqi4x", fcntl.F_WRLCK, 0, i, 1, 0)
            res = fcntl.fcntl(f.fileno(), fcntl.F_GETLK, req)
            if struct.unpack("hh4xqqi4x", res)[0] != fcntl.F_UNLCK:
                n += 1
    return n


def qh_children(srv) -> list[int]:
    import subprocess
    out = subprocess.run(["pgrep", "-P", str(srv.proc.pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_the_budget_keeps_slots_free_for_normal_clients(qmail):
    """tcpserver -c 50, a budget of 20, 60 offenders sending as fast as they
    can: at most 20 are held at a time, the rest are answered at once (and
    leave), and normal clients still get in."""
    rl.table(qmail, OFFENDERS)
    qmail.control.write("tarpitbudget", "20\n")
    srv = qmail.smtpd(concurrency=50)
    prime(srv)
    stop = threading.Event()
    lock = threading.Lock()
    open_sessions = {}
    answered_at_once = [0]

    def offender(i):
        while not stop.is_set():
            try:
                s = offender_session(srv, i, timeout=40)
            except (OSError, AssertionError):
                continue
            with lock:
                open_sessions[i] = s
            try:
                t0 = time.monotonic()
                reply = s.reply()
                if reply == b"354 go ahead\r\n" and time.monotonic() - t0 < 0.5:
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
            time.sleep(2)
            times = []
            for _ in range(10):
                most_held = max(most_held, count_held(20))
                times.append(normal_session(srv))
            most_held = max(most_held, count_held(20))
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
    assert max(times) < 5.0, times
    assert most_held == 20  # the budget is used, and never exceeded (20 slots)
    assert answered_at_once[0] > 20
    log = srv.log()
    assert " waited 0ms: over budget 20\n" in log
