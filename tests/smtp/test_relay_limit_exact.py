"""Limit N means N: many qmail-smtpd processes charging one budget at once,
and processes killed with SIGKILL in the middle of it."""

import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import qmail_harness as qh
import relaylimits as rl
import tlsauth as ta

SESSIONS = 100

def relay_run(srv, n_rcpts: int, start: threading.Barrier | None = None, auth=None):
    """rl.relay_run with a plain relay client's session, or an authenticated
    one (STARTTLS, AUTH PLAIN) when auth is (user, password)."""
    return rl.relay_run(lambda: rl.auth_session(srv, *auth, timeout=60) if auth else rl.session(srv, timeout=60),
                        n_rcpts, start)


def test_hundred_parallel_sessions_of_one_client_get_exactly_n(qmail):
    limit = 237
    rl.table(qmail, f"default rcpt={limit}/1h\n")
    srv = qmail.smtpd(env=rl.RELAY, concurrency=SESSIONS + 10)
    start = threading.Barrier(SESSIONS)
    with ThreadPoolExecutor(SESSIONS) as pool:
        results = list(pool.map(lambda _: relay_run(srv, 5, start), range(SESSIONS)))
    assert [r for r in results if isinstance(r, str)] == []
    # every message queued (else its recipients were given back, and granted again)
    assert [reply for got, reply in results if got and not reply.startswith(b"250 ok ")] == []
    assert sum(got for got, _ in results) == limit
    msgs = qmail.queue.messages()
    assert sum(len(m["rcpts"]) for m in msgs) == limit
    assert rl.used("127.0.0.1") == limit
    assert srv.log().count("rcpt 237/237 per 1h: 451\n") == SESSIONS * 5 - limit


def test_parallel_sessions_of_one_authenticated_user_get_exactly_n(qmail):
    limit = 77
    sessions = 40
    ta.install_cert(qmail.control)
    rl.table(qmail, f"alice@test.example rcpt={limit}/1d\n")
    srv = qmail.smtpd(args=ta.auth_args(), concurrency=sessions + 10)
    start = threading.Barrier(sessions)
    with ThreadPoolExecutor(sessions) as pool:
        results = list(pool.map(lambda _: relay_run(srv, 4, start, ("alice", "correct horse")), range(sessions)))
    assert [r for r in results if isinstance(r, str)] == []
    assert [reply for got, reply in results if got and not reply.startswith(b"250 ok ")] == []
    assert sum(got for got, _ in results) == limit
    assert sum(len(m["rcpts"]) for m in qmail.queue.messages()) == limit
    assert rl.used("alice@test.example") == limit


def test_sigkill_storm_leaves_no_stuck_lock_and_exact_counts(qmail):
    """Processes killed mid-update neither block the store nor corrupt it.
    A killed process cannot give back its unfinished transaction, so its
    charges stay (the documented rule): afterwards the count is the queued
    recipients plus what killed sessions had been granted, give or take the
    one charge a killed process may have committed without answering it, and
    the budget left is exactly the limit minus that count."""
    limit = 100000
    rl.table(qmail, f"default rcpt={limit}/1h\n")
    srv = qmail.smtpd(env=rl.RELAY, concurrency=60)
    stop = threading.Event()
    lock = threading.Lock()
    granted = {"queued": 0, "unfinished": 0, "sessions": 0}

    def one_session():
        """Returns (granted, queued); granted counts 250s received."""
        got = 0
        try:
            s = rl.session(srv, timeout=60)
        except (OSError, AssertionError):
            return 0, False  # killed before the greeting: nothing granted
        try:
            s.cmd("MAIL FROM:<a@client.example>")
            for a in rl.far(20):  # one at a time: a kill ends the loop
                r = s.cmd(f"RCPT TO:<{a}>")
                if not r:
                    return got, False  # killed
                assert r.startswith(b"250 "), r  # never refused: the limit is far
                got += 1
            if s.cmd("DATA").startswith(b"354 ") and s.cmd("Subject: x\r\n\r\nx\r\n.").startswith(b"250 ok "):
                return got, True
            return got, False
        except OSError:
            return got, False
        finally:
            s.close()

    def client():
        while not stop.is_set():
            got, queued = one_session()
            with lock:
                granted["queued" if queued else "unfinished"] += got
                granted["sessions"] += queued

    # the storm lasts until enough were killed and enough queued, however
    # slow the machine; the deadline only bounds a failure
    killed = 0
    with ThreadPoolExecutor(40) as pool:
        futures = [pool.submit(client) for _ in range(40)]
        deadline = time.monotonic() + 300
        rnd = random.Random(7)
        while (killed <= 300 or granted["sessions"] <= 20) and time.monotonic() < deadline:
            pids = srv.children()
            for pid in rnd.sample(pids, min(len(pids), 5)):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.05)  # pacing: a few kills at a time, sessions in between
        stop.set()
        for f in futures:
            f.result(timeout=60)
    assert killed > 300 and granted["sessions"] > 20
    assert qh.wait_for(lambda: srv.children() == [])
    count = rl.used("127.0.0.1")
    low = granted["queued"]
    high = granted["queued"] + granted["unfinished"] + killed
    assert low <= count <= high, (count, granted, killed)
    assert sum(len(m["rcpts"]) for m in qmail.queue.messages()) >= granted["queued"]
    # No stuck lock, no corrupt count: the budget left is exactly limit - count.
    # (a stuck lock would make these wait for the store's lock timeout and
    # log a store fault: fail-open would then accept all 10)
    rl.table(qmail, f"default rcpt={count + 7}/1h\n")
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(10))) == 7
    s.close()
    assert "store fault" not in srv.log()
