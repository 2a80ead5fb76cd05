"""Relay limits, AUTH-failure limits and the teergrube on a Redis that two
qmail-smtpd servers share, as two hosts behind one name would: one budget per
user across both, exactly N with a hundred sessions at once; faults follow
control/throttlefail within the timeout.

The two servers are one installation's qmail-smtpd under two tcpservers:
qmail compiles its home into every program (auto_qmail), so a second home
would need a second full build and install for no gain - what makes the two
"hosts" share a budget is only the Redis they name, and each test checks
that no LMDB store was made in throttle/ (so nothing was shared through it).
"""

import os
import time

import pytest

import redis_harness as rh
import relaylimits as rl
import tlsauth as ta

SESSIONS = 100
CLOSED_REPLY = b"451 4.3.0 relay limits are temporarily unavailable, try again later\r\n"


def test_hundred_sessions_of_one_user_across_two_hosts_get_exactly_n(qmail):
    limit = 137
    with rh.RedisServer() as redis:
        rh.use_store(qmail.control, redis.url)
        rl.table(qmail, f"alice@test.example rcpt={limit}/1d\n")
        a, b = rh.two_servers(qmail, args=ta.auth_args(), env={"FORCETLS": "0"}, concurrency=SESSIONS)
        results = rh.sessions_split_across([a, b], SESSIONS)
        assert sum(got for got, _ in results) == limit
        # both hosts took part
        assert sum(got for i, (got, _) in enumerate(results) if i % 2 == 0) > 0
        assert sum(got for i, (got, _) in enumerate(results) if i % 2 == 1) > 0
        assert sum(len(m["rcpts"]) for m in qmail.queue.messages()) == limit
        assert rl.used("alice@test.example") == limit
        refusals = a.log().count("rcpt 137/137 per 1d: 451\n") + b.log().count("rcpt 137/137 per 1d: 451\n")
        assert refusals == SESSIONS * 5 - limit
        assert "store fault" not in a.log() + b.log()
        assert redis.keys() == ["qt1:{u:alice@test.example}"]
        assert 0 < redis.cmd("PTTL", "qt1:{u:alice@test.example}") <= (86400 + 1440 + 61) * 1000
        assert rh.no_lmdb_store()


def test_auth_failures_of_one_address_count_across_hosts(qmail):
    with rh.RedisServer() as redis:
        rh.use_store(qmail.control, redis.url)
        rl.table(qmail, "default authfail=3/10m\n")
        a, b = rh.two_servers(qmail, args=ta.auth_args(), env={"FORCETLS": "0"})
        for srv in (a, b, a):
            s = ta.connect(srv)
            s.cmd("EHLO client.example")
            assert s.cmd("AUTH PLAIN " + ta.plain("alice", "guess")).startswith(b"535 ")
            s.close()
        s = ta.connect(b)
        s.cmd("EHLO client.example")
        reply = s.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse"))
        assert reply.startswith(b"454 4.7.0 too many authentication failures"), reply
        s.close()
        assert "throttle: auth limit address 127.0.0.1 ip 127.0.0.1 authfail 3/3 per 10m: 454\n" in b.log()
        assert rl.used("127.0.0.1", "authfail") == 3
        assert rh.no_lmdb_store()


def test_a_client_that_sends_fast_through_one_host_is_held_by_the_other(qmail):
    """The teergrube's state is in Redis too: the rate a client shows one
    host is what the other sees."""
    with rh.RedisServer() as redis:
        rh.use_store(qmail.control, redis.url)
        rl.table(qmail, '127.0.0.0/8 st=1000 stmax=2000 tg=1 tgtext="slow down"\n')
        a, b = rh.two_servers(qmail)
        for srv, held in ((a, False), (b, True)):
            s = rl.session(srv)
            assert s.cmd("MAIL FROM:<a@client.example>").startswith(b"250 ")
            assert s.cmd("RCPT TO:<u@test.example>").startswith(b"250 ")
            t0 = time.monotonic()
            reply = s.cmd("DATA")
            took = time.monotonic() - t0
            assert reply.endswith(b"354 go ahead\r\n")
            assert s.cmd("Subject: x\r\n\r\nx\r\n.").startswith(b"250 ok ")
            s.close()
            if held:
                assert took > 1.5 and reply.startswith(b"354-slow down\r\n"), (took, reply)
            else:
                assert took < 1.0, took
        assert "throttle: teergrube ip 127.0.0.1 " in b.log()
        assert any(k.startswith("qt1:r:{tg:") for k in redis.keys())
        assert rh.no_lmdb_store()


def relay_three(srv):
    s = rl.session(srv, timeout=10)
    t0 = time.monotonic()
    s.cmd("MAIL FROM:<a@client.example>")
    replies = rl.rcpts(s, rl.far(3))
    took = time.monotonic() - t0
    assert s.cmd("QUIT").startswith(b"221 ")
    s.close()
    return replies, took


@pytest.mark.parametrize("closed", [False, True], ids=["fail-open", "fail-closed"])
def test_redis_stopped_follows_the_policy_within_the_timeout(qmail, closed):
    if closed:
        qmail.control.write("throttlefail", "closed\n")
    with rh.RedisServer() as redis:
        rh.use_store(qmail.control, redis.url + "?connect_timeout=200&timeout=200")
        rl.table(qmail, "default rcpt=1/1h\n")
        srv = qmail.smtpd(env=rl.RELAY)
        replies, _ = relay_three(srv)
        assert replies == [b"250 ok\r\n", rl_limit_reply(), rl_limit_reply()]
        redis.stop()  # gone: connections are refused
        replies, took = relay_three(srv)
        assert took < 2
        assert replies == ([CLOSED_REPLY] * 3 if closed else [b"250 ok\r\n"] * 3)
        log = srv.log()
        assert "qmail-smtpd: throttle: store fault ip 127.0.0.1 charge: unavailable (connect to 127.0.0.1:" in log
        assert log.rstrip().endswith(": fail-closed" if closed else ": fail-open")
        # fail-open logs once per session, fail-closed every refusal
        assert log.count("store fault") == (3 if closed else 1)


@pytest.mark.parametrize("closed", [False, True], ids=["fail-open", "fail-closed"])
def test_a_stalled_redis_costs_a_session_one_timeout(qmail, closed):
    if closed:
        qmail.control.write("throttlefail", "closed\n")
    with rh.RedisServer() as redis:
        rh.use_store(qmail.control, redis.url + "?connect_timeout=300&timeout=300")
        rl.table(qmail, "default rcpt=10/1h\n")
        srv = qmail.smtpd(env=rl.RELAY)
        redis.pause()  # accepts connections (the kernel does), answers nothing
        try:
            replies, took = relay_three(srv)
        finally:
            redis.resume()
        assert 0.25 < took < 1.5, took  # one timeout, then the failure is remembered
        assert replies == ([CLOSED_REPLY] * 3 if closed else [b"250 ok\r\n"] * 3)
        assert "charge: unavailable (read from 127.0.0.1:" in srv.log()
        assert "timed out after 300 ms" in srv.log()
        # Redis back: the next session counts again
        replies, _ = relay_three(srv)
        assert replies == [b"250 ok\r\n"] * 3


def refused_and_never_logged(qmail, secret: str, why: str):
    """A store configuration qmail-smtpd refuses: relaying goes on (fail-open),
    the log says why, and never the secret."""
    rl.table(qmail, "default rcpt=1/1h\n")
    srv = qmail.smtpd(env=rl.RELAY)
    replies, _ = relay_three(srv)
    assert replies == [b"250 ok\r\n"] * 3
    log = srv.log()
    assert why in log
    assert secret not in log
    return srv


def test_a_password_in_a_file_only_qmail_smtpd_can_read(qmail):
    with rh.RedisServer(password="s3cret-for-test") as redis:
        rh.use_store(qmail.control, redis.url, password="s3cret-for-test")
        rl.table(qmail, "default rcpt=1/1h\n")
        replies, _ = relay_three(qmail.smtpd(env=rl.RELAY))
        assert replies == [b"250 ok\r\n", rl_limit_reply(), rl_limit_reply()]
        os.chmod(qmail.control.path("throttlestorepassword"), 0o644)  # readable by everyone: refused
        refused_and_never_logged(qmail, "s3cret-for-test",
                                 "throttlestorepassword is not a regular file that only its owner and group may read")


def test_a_url_with_a_password_is_refused_and_never_logged(qmail):
    qmail.control.write("throttlestore", "redis://qmail:s3cret-in-url@127.0.0.1:1/0\n")
    refused_and_never_logged(qmail, "s3cret-in-url", "store fault ip 127.0.0.1 charge: unavailable "
                             "(control/throttlestore: a password does not belong")


def test_a_session_that_never_needs_the_store_never_connects(qmail):
    with rh.RedisServer() as redis:
        rh.use_store(qmail.control, redis.url)
        rl.table(qmail, "default rcpt=5/1h\n")
        srv = qmail.smtpd()  # not a relay client: no limits apply

        def connections() -> int:
            return int(redis.cmd("INFO", "stats").split("total_connections_received:")[1].split()[0])

        before = connections()
        s = rl.session(srv)
        s.cmd("MAIL FROM:<a@client.example>")
        assert s.cmd("RCPT TO:<u@test.example>").startswith(b"250 ")
        s.cmd("QUIT")
        s.close()
        assert connections() == before + 1  # only ours, to ask
        assert redis.keys() == []


def rl_limit_reply() -> bytes:
    return (b"451 4.7.1 relay limit reached: recipients per 1h for address 127.0.0.1; "
            b"try again in about 61 minutes\r\n")


def test_throttlectl_looks_after_the_redis_store(qmail):
    """show, top and reset run against Redis in the two-store tests
    (any_store); here what differs: stats, expire, repair, a stopped Redis."""
    with rh.RedisServer() as redis:
        rh.use_store(qmail.control, redis.url)
        rl.table(qmail, "default rcpt=5/1h,8/1d\n")
        srv = qmail.smtpd(env=rl.RELAY)
        replies, _ = relay_three(srv)
        assert rl.accepted(replies) == 3
        out = rl.throttlectl("stats").stdout
        assert out.startswith(f"store redis://127.0.0.1:{redis.port}/0\ncounters 2\nrecords 0\nbytes used ")
        assert "file bytes" not in out
        assert rl.throttlectl("expire").stdout == "0 idle entries removed\n"  # nothing idle yet
        bad = rl.throttlectl("repair", check=False)
        assert bad.returncode == 100 and "repair is for the LMDB store" in bad.stderr
        assert rh.no_lmdb_store()
        redis.stop()
        down = rl.throttlectl("show", "127.0.0.1", check=False)
        assert down.returncode == 111
        assert "store unavailable: connect to 127.0.0.1:" in down.stderr
