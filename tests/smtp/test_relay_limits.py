"""Relay limits in the real qmail-smtpd: what is counted, what is given back,
the replies and log lines, who is limited and who is not."""

import json
import subprocess

import qmail_harness as qh
import relaylimits as rl
import tlsauth as ta

LIMIT_REPLY = (b"451 4.7.1 relay limit reached: recipients per 1h for address 127.0.0.1; "
               b"try again in about 61 minutes\r\n")


def test_a_relay_client_gets_exactly_its_limit_then_451_saying_which_limit(qmail):
    rl.table(qmail, "default rcpt=3/1h\n")
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    assert s.cmd("MAIL FROM:<a@client.example>") == b"250 ok\r\n"
    replies = rl.rcpts(s, rl.far(5))
    assert replies[:3] == [b"250 ok\r\n"] * 3
    assert replies[3:] == [LIMIT_REPLY] * 2
    # a recipient in rcpthosts is not relayed: never limited
    assert s.cmd("RCPT TO:<postmaster@test.example>") == b"250 ok\r\n"
    assert rl.data(s).startswith(b"250 ok ")
    s.cmd("QUIT")
    s.close()
    msgs = qmail.queue.messages()
    assert len(msgs) == 1
    assert sorted(msgs[0]["rcpts"]) == sorted(rl.far(3) + ["postmaster@test.example"])
    log = srv.log()
    assert log.count("qmail-smtpd: throttle: relay limit address 127.0.0.1 ip 127.0.0.1 rcpt 3/3 per 1h: 451\n") == 2
    assert rl.used("127.0.0.1") == 3


def test_recipients_in_rcpthosts_are_not_counted(qmail):
    rl.table(qmail, "default rcpt=2/1h\n")
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    local = [f"u{i}@test.example" for i in range(20)] + [f"u{i}@local.example" for i in range(5)]
    assert rl.accepted(rl.rcpts(s, local)) == 25
    assert rl.used("127.0.0.1") == 0
    assert rl.accepted(rl.rcpts(s, rl.far(3))) == 2
    assert rl.used("127.0.0.1") == 2
    s.close()


def test_transactions_that_are_not_queued_give_their_recipients_back(qmail):
    rl.table(qmail, "default rcpt=4/1h\n")
    qmail.control.write("databytes", "200\n")
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    # RSET
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(4))) == 4
    assert rl.used("127.0.0.1") == 4
    assert s.cmd("RSET") == b"250 flushed\r\n"
    assert rl.used("127.0.0.1") == 0
    # a new MAIL without DATA
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(4))) == 4
    s.cmd("MAIL FROM:<b@client.example>")
    assert rl.used("127.0.0.1") == 0
    # DATA refused: the message exceeds databytes
    assert rl.accepted(rl.rcpts(s, rl.far(2))) == 2
    assert s.cmd("DATA").startswith(b"354 ")
    assert s.cmd("Subject: big\r\n\r\n" + "x" * 400 + "\r\n.").startswith(b"552 ")
    assert rl.used("127.0.0.1") == 0
    # QUIT in the middle of a transaction
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(3))) == 3
    assert s.cmd("QUIT").startswith(b"221 ")
    s.close()
    assert qh.wait_for(lambda: rl.used("127.0.0.1") == 0)
    # the connection dropped without QUIT
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(3))) == 3
    s.close()
    assert qh.wait_for(lambda: rl.used("127.0.0.1") == 0)
    # queued: the charges stay, and only the room left is granted
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(3))) == 3
    assert rl.data(s).startswith(b"250 ok ")
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(3))) == 1
    s.close()
    assert qh.wait_for(lambda: rl.used("127.0.0.1") == 3)
    assert len(qmail.queue.messages()) == 1


def test_message_limits_count_queued_messages_with_relayed_recipients(qmail):
    rl.table(qmail, "default msg=2/1h\n")
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    for _ in range(2):
        s.cmd("MAIL FROM:<a@client.example>")
        assert rl.accepted(rl.rcpts(s, rl.far(5))) == 5  # recipients are not limited
        assert rl.data(s).startswith(b"250 ok ")
    # a message to local recipients only is no relayed message
    s.cmd("MAIL FROM:<a@client.example>")
    assert s.cmd("RCPT TO:<postmaster@test.example>") == b"250 ok\r\n"
    assert rl.data(s).startswith(b"250 ok ")
    s.cmd("MAIL FROM:<a@client.example>")
    assert s.cmd("RCPT TO:<x@far.example>").startswith(
        b"451 4.7.1 relay limit reached: messages per 1h for address 127.0.0.1; try again in about ")
    s.close()
    assert rl.used("127.0.0.1", "msg") == 2
    assert "throttle: relay limit address 127.0.0.1 ip 127.0.0.1 msg 2/2 per 1h: 451\n" in srv.log()


def test_action_421_answers_and_ends_the_session(qmail):
    rl.table(qmail, "default rcpt=2/1h action=421\n")
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(2))) == 2
    assert s.cmd("RCPT TO:<x@far.example>") == \
        b"421 4.7.1 relay limit reached: recipients per 1h for address 127.0.0.1; closing connection\r\n"
    assert s.rest() == b""
    s.close()
    assert "rcpt 2/2 per 1h: 421\n" in srv.log()
    # the session ended before DATA: its recipients were given back
    assert qh.wait_for(lambda: rl.used("127.0.0.1") == 0)
    assert qmail.queue.messages() == []


def test_action_450(qmail):
    rl.table(qmail, "127.0.0.1 rcpt=1/10m action=450\n")
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.rcpts(s, rl.far(2)) == [
        b"250 ok\r\n",
        b"450 4.7.1 relay limit reached: recipients per 10m for address 127.0.0.1; try again in about 11 minutes\r\n"]
    s.close()


def test_clients_that_do_not_relay_are_untouched(qmail):
    rl.table(qmail, "default rcpt=1/1h\n")
    srv = qmail.smtpd()  # no RELAYCLIENT
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, [f"u{i}@test.example" for i in range(10)])) == 10
    assert s.cmd("RCPT TO:<x@far.example>") == b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"
    assert rl.data(s).startswith(b"250 ok ")
    s.close()
    assert "throttle" not in srv.log()
    assert list((qh.HOME / "throttle").iterdir()) == []  # the store was never opened


def test_nothrottle_in_the_environment_turns_limits_off(qmail):
    rl.table(qmail, "default rcpt=1/1h\n")
    srv = qmail.smtpd(env={**rl.RELAY, "NOTHROTTLE": "1"})
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(10))) == 10
    s.close()
    assert list((qh.HOME / "throttle").iterdir()) == []


def test_an_exempt_entry_is_never_limited(qmail):
    rl.table(qmail, "default rcpt=1/1h\n127.0.0.0/8 exempt\n")
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(10))) == 10
    s.close()


def test_limits_key_on_the_user_the_domain_and_the_address(qmail):
    ta.install_cert(qmail.control)
    rl.table(qmail, "default rcpt=1/1h\nalice@test.example rcpt=2/1h\n@other.example rcpt=3/1h\n")
    srv = qmail.smtpd(args=ta.auth_args(), env=rl.RELAY)
    # alice over STARTTLS + AUTH: her own budget, shared by her sessions; a
    # login without a domain is completed with control/defaultdomain
    a1 = rl.auth_session(srv, "alice", "correct horse")
    a1.cmd("MAIL FROM:<alice@test.example>")
    assert rl.accepted(rl.rcpts(a1, rl.far(1))) == 1
    a2 = rl.auth_session(srv, "alice", "correct horse")
    a2.cmd("MAIL FROM:<alice@test.example>")
    assert rl.rcpts(a2, rl.far(2)) == [
        b"250 ok\r\n",
        b"451 4.7.1 relay limit reached: recipients per 1h for user alice@test.example; try again in about 61 minutes\r\n"]
    assert rl.data(a1).startswith(b"250 ok ")
    assert rl.data(a2).startswith(b"250 ok ")
    # bob counts in his domain's budget
    b = rl.auth_session(srv, "bob@other.example", "s3cret")
    b.cmd("MAIL FROM:<bob@other.example>")
    assert rl.accepted(rl.rcpts(b, rl.far(5))) == 3
    # the same address without AUTH: the default, per address
    c = rl.session(srv)
    c.cmd("MAIL FROM:<c@client.example>")
    assert rl.accepted(rl.rcpts(c, rl.far(3))) == 1
    for s in (a1, a2, b, c):
        s.close()
    assert rl.used("alice@test.example") == 2
    assert rl.used("@other.example") == 0  # bob's transaction was never queued
    assert qh.wait_for(lambda: rl.used("127.0.0.1") == 0)
    log = srv.log()
    assert "throttle: relay limit user alice@test.example ip 127.0.0.1 rcpt 2/2 per 1h: 451\n" in log
    assert "throttle: relay limit domain other.example ip 127.0.0.1 rcpt 3/3 per 1h: 451\n" in log
    assert "correct horse" not in log and "s3cret" not in log


def test_throttlectl_shows_top_senders_and_resets_an_identity(qmail, any_store):
    rl.table(qmail, "default rcpt=5/1h,8/1d\n")
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(6))) == 5
    assert rl.data(s).startswith(b"250 ok ")
    out = rl.throttlectl("show", "127.0.0.1").stdout
    assert "address 127.0.0.1:\n" in out
    assert "  rcpt per 1h: 5 used of 5, 0 left, next frees in 1h" in out
    assert "  rcpt per 1d: 5 used of 8, 3 left, next frees in 1d" in out
    top = rl.throttlectl("top", "-n", "1", "rcpt").stdout.splitlines()
    assert len(top) == 1 and top[0].startswith("address 127.0.0.1 rcpt per ")
    assert rl.throttlectl("show", "192.0.2.9").stdout == "address 192.0.2.9: nothing counted\n"
    assert rl.throttlectl("reset", "127.0.0.1").stdout == "address 127.0.0.1: 2 counters reset\n"
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(6))) == 5  # a full budget again, at once
    s.close()
    bad = rl.throttlectl("show", "not an identity", check=False)
    assert bad.returncode == 100 and "qmail-throttlectl: fatal: " in bad.stderr


def test_throttlectl_as_root_leaves_the_store_to_qmail_smtpd(qmail):
    rl.table(qmail, "default rcpt=2/1h\n")
    rl.throttlectl("stats")  # root creates the store before qmail-smtpd ever ran
    uid, gid = qh.uid_gid()
    for p in (qh.HOME / "throttle").rglob("*"):
        assert (p.stat().st_uid, p.stat().st_gid) == (uid, gid), p
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(3))) == 2
    s.close()
    assert "store fault" not in srv.log()
    assert "idle entr" in rl.throttlectl("expire").stdout


def test_authfail_limit_refuses_auth_from_an_address_with_too_many_failures(qmail):
    ta.install_cert(qmail.control)
    rl.table(qmail, "default authfail=2/10m\n")
    record = ta.record_dir("checkpassword") / "calls"
    srv = qmail.smtpd(args=ta.auth_args(), env={"CHECKPASSWORD_RECORD": str(record)})
    for _ in range(2):
        t = ta.starttls(rl.session(srv))
        assert t.cmd("AUTH PLAIN " + ta.plain("alice", "guess")).startswith(b"535 ")
        t.close()
    t = ta.starttls(rl.session(srv))
    reply = t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse"))
    assert reply.startswith(b"454 4.7.0 too many authentication failures from your address; try again in about ")
    t.close()
    # refused before any password is checked: checkpassword ran for the two guesses only
    assert [json.loads(line)["user"] for line in record.read_text().splitlines()] == ["alice", "alice"]
    assert "throttle: auth limit address 127.0.0.1 ip 127.0.0.1 authfail 2/2 per 10m: 454\n" in srv.log()
    assert rl.used("127.0.0.1", "authfail") == 2


def test_a_relaylimits_file_of_the_old_script_limits_exactly_n_per_day(qmail):
    # rcptcheck-overlimit's control/relaylimits, unchanged: ":N" is the
    # default, "key:N" an exact key; the script let N+1 through and matched
    # keys as substrings
    qmail.control.write("relaylimits", ":1\n127.0.0.1:2\n27.0.0.1:50\n")
    r = subprocess.run([str(qh.HOME / "bin/qmail-newspamt"), "-d", str(qh.HOME)],
                          capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    replies = rl.rcpts(s, rl.far(3))
    assert replies[:2] == [b"250 ok\r\n"] * 2
    assert replies[2].startswith(b"421 4.7.1 relay limit reached: recipients per 1d for address 127.0.0.1")
    s.close()
