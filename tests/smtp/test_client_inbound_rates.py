"""Inbound rates at RCPT (spamt(5), CLIENT LIMITS; patch 0071): inrcpt= and
inmsg= count the recipients and messages a client that is not a relay client
gets accepted, exactly, also over parallel sessions; a refused recipient is
answered 450 and the session goes on; what a transaction that is not queued
was charged is given back; relay clients, exempt entries and NOTHROTTLE are
not counted."""

import threading
from concurrent.futures import ThreadPoolExecutor

import qmail_harness as qh
import relaylimits as rl

TOO_MANY = b"450 4.7.1 too many recipients from 127.0.0.1\r\n"
TOO_MUCH = b"450 4.7.1 too much mail from 127.0.0.1\r\n"
LOG = "qmail-smtpd: throttle: client limit address 127.0.0.1 ip 127.0.0.1 "


def local(n: int, start: int = 0) -> list[str]:
    """Recipients in rcpthosts: what a client that is not a relay client may send to."""
    return rl.far(n, start, "test.example")


def parallel(n: int, run) -> list:
    """run(start) in n threads whose sessions start their commands together;
    the results, and none of them an exception's text."""
    start = threading.Barrier(n)
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda _: run(start), range(n)))
    assert [r for r in results if isinstance(r, str)] == []
    return results


def queue_each(srv: qh.SmtpServer, messages: int, recipients: list[str]) -> None:
    """One session that sends `messages` messages to all of `recipients`,
    every recipient accepted and every message queued."""
    s = rl.session(srv)
    for _ in range(messages):
        assert s.cmd("MAIL FROM:<a@client.example>") == b"250 ok\r\n"
        assert rl.accepted(rl.rcpts(s, recipients)) == len(recipients)
        assert rl.data(s).startswith(b"250 ok ")
    assert s.cmd("QUIT").startswith(b"221 ")
    s.close()


def limited_at_one(srv: qh.SmtpServer) -> None:
    """inrcpt=1 applies to a session of srv: the control case of the tests
    that show who is not counted (they fail, too, when nothing is counted)."""
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.rcpts(s, local(2)) == [b"250 ok\r\n", TOO_MANY]
    assert s.cmd("RSET") == b"250 flushed\r\n"
    assert s.cmd("QUIT").startswith(b"221 ")
    s.close()


def session_run(srv: qh.SmtpServer, start: threading.Barrier, messages: int, n_rcpts: int):
    """One session: `messages` transactions of n_rcpts recipients each, DATA
    when any was accepted, RSET otherwise. Returns the RCPT replies and the
    replies to DATA, or the exception's text (and breaks start)."""
    try:
        with rl.CONNECTING:
            s = rl.session(srv, timeout=60)
        start.wait(timeout=60)
        replies, queued = [], []
        for _ in range(messages):
            assert s.cmd("MAIL FROM:<a@client.example>") == b"250 ok\r\n"
            got = rl.rcpts(s, local(n_rcpts))
            replies += got
            if rl.accepted(got):
                queued.append(rl.data(s))
            else:
                assert s.cmd("RSET") == b"250 flushed\r\n"
        assert s.cmd("QUIT").startswith(b"221 ")
        s.close()
        return replies, queued
    except (OSError, AssertionError, threading.BrokenBarrierError) as e:
        start.abort()
        return repr(e)


def test_inrcpt_is_exact_over_parallel_sessions_and_sessions_go_on(qmail):
    limit, sessions, each = 37, 20, 5
    rl.table(qmail, f"default inrcpt={limit}/1h\n")
    srv = qmail.smtpd(concurrency=sessions + 10)
    results = parallel(sessions, lambda start: session_run(srv, start, 1, each))
    replies = [r for got, _ in results for r in got]
    assert replies.count(b"250 ok\r\n") == limit
    assert sorted(set(replies)) == sorted({b"250 ok\r\n", TOO_MANY})
    # every session that got a recipient queued its message
    assert all(q.startswith(b"250 ok ") for _, queued in results for q in queued)
    assert sum(len(m["rcpts"]) for m in qmail.queue.messages()) == limit
    assert rl.used("127.0.0.1", "inrcpt") == limit
    assert srv.log().count(LOG + f"inrcpt {limit}/{limit} per 1h: 450\n") == sessions * each - limit


def test_inmsg_is_exact_over_parallel_sessions(qmail):
    limit, sessions = 7, 10
    rl.table(qmail, f"default inmsg={limit}/1h\n")
    srv = qmail.smtpd(concurrency=sessions + 10)
    results = parallel(sessions, lambda start: session_run(srv, start, 2, 2))
    queued = [q for _, qs in results for q in qs]
    assert len(queued) == limit and all(q.startswith(b"250 ok ") for q in queued)
    # a message refused is refused at each of its recipients: each is its first
    replies = [r for got, _ in results for r in got]
    assert replies.count(TOO_MUCH) == (sessions * 2 - limit) * 2
    assert replies.count(b"250 ok\r\n") == limit * 2
    msgs = qmail.queue.messages()
    assert len(msgs) == limit and all(len(m["rcpts"]) == 2 for m in msgs)
    assert rl.used("127.0.0.1", "inmsg") == limit
    assert srv.log().count(LOG + f"inmsg {limit}/{limit} per 1h: 450\n") == (sessions * 2 - limit) * 2


def test_transactions_that_are_not_queued_give_their_charges_back(qmail):
    rl.table(qmail, "default inrcpt=4/1h inmsg=2/1h\n")
    qmail.control.write("databytes", "200\n")
    srv = qmail.smtpd()

    def used():
        return rl.used("127.0.0.1", "inrcpt"), rl.used("127.0.0.1", "inmsg")

    s = rl.session(srv)
    # RSET
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, local(4))) == 4
    assert used() == (4, 1)
    assert s.cmd("RSET") == b"250 flushed\r\n"
    assert used() == (0, 0)
    # a new MAIL
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, local(4))) == 4
    s.cmd("MAIL FROM:<b@client.example>")
    assert used() == (0, 0)
    # DATA refused: the message exceeds databytes
    assert rl.accepted(rl.rcpts(s, local(2))) == 2
    assert s.cmd("DATA").startswith(b"354 ")
    assert s.cmd("Subject: big\r\n\r\n" + "x" * 400 + "\r\n.").startswith(b"552 ")
    assert used() == (0, 0)
    # QUIT in the middle of a transaction
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, local(3))) == 3
    assert s.cmd("QUIT").startswith(b"221 ")
    s.close()
    assert qh.wait_for(lambda: used() == (0, 0))
    # the connection dropped without QUIT
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, local(3))) == 3
    s.close()
    assert qh.wait_for(lambda: used() == (0, 0))
    # all of it is still there: four recipients, then 450
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.rcpts(s, local(5)) == [b"250 ok\r\n"] * 4 + [TOO_MANY]
    assert rl.data(s).startswith(b"250 ok ")
    assert used() == (4, 1)
    s.cmd("QUIT")
    s.close()
    assert [len(m["rcpts"]) for m in qmail.queue.messages()] == [4]


def test_a_relay_client_is_not_charged_by_inbound_rates(qmail):
    rl.table(qmail, "default inrcpt=1/1h inmsg=1/1h\n")
    srv = qmail.smtpd(env=rl.RELAY)
    queue_each(srv, 2, local(3) + rl.far(2))
    assert len(qmail.queue.messages()) == 2
    assert rl.used("127.0.0.1", "inrcpt") == 0 and rl.used("127.0.0.1", "inmsg") == 0
    assert "client limit" not in srv.log()
    limited_at_one(qmail.smtpd())  # the same client without RELAYCLIENT


def test_exempt_entries_and_nothrottle_are_not_counted(qmail):
    for text, env in (("default inrcpt=1/1h inmsg=1/1h\n127.0.0.0/8 exempt\n", {}),
                      ("default inrcpt=1/1h inmsg=1/1h\n", {"NOTHROTTLE": "1"})):
        rl.table(qmail, text)
        srv = qmail.smtpd(env=env)
        queue_each(srv, 2, local(3))
        srv.stop()
        assert rl.used("127.0.0.1", "inrcpt") == 0 and rl.used("127.0.0.1", "inmsg") == 0
        assert "client limit" not in srv.log()
    assert len(qmail.queue.messages()) == 4
    limited_at_one(qmail.smtpd())  # neither exempt nor NOTHROTTLE


def test_a_client_without_inbound_rates_opens_no_store(qmail):
    """Other clients have inbound rates (control/spamt.clients exists), this
    one none: its recipients are accepted and nothing is counted or opened."""
    rl.table(qmail, "10.0.0.0/8 inrcpt=1/1h\n")
    assert (qh.HOME / "control/spamt.clients").exists()
    queue_each(qmail.smtpd(), 1, local(3))
    assert list((qh.HOME / "throttle").iterdir()) == []
    rl.table(qmail, "10.0.0.0/8 inrcpt=1/1h\n127.0.0.0/8 inrcpt=1/1h\n")
    limited_at_one(qmail.smtpd())  # with a limit, the store is used
    assert list((qh.HOME / "throttle").iterdir()) != []
