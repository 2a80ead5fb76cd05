"""The throttle's numbers in control files (throttle_controls.h): a value
qmail-smtpd cannot use is logged, once, in the same words qmail-showctl
uses, and the default applies - never a silent default."""

import pytest

import qmail_harness as qh
import relaylimits as rl

FAST = '127.0.0.0/8 st=100000 stmax=1000 tg=1 tgtext="slow down"\n'


@pytest.mark.parametrize("size,logged", [
    ("2G\n", "qmail-smtpd: throttle: control/throttlestoresize: '2G' is not a whole number from 1 to 1048576: "
              "using the default, 1024\n"),
    ("64\n", None),
], ids=["invalid", "valid"])
def test_the_store_size_is_logged_when_invalid_and_the_limits_work(qmail, size, logged):
    qmail.control.write("throttlestoresize", size)
    rl.table(qmail, "default rcpt=2/1h\n")
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(3))) == 2  # on the default size or the one given
    assert s.cmd("QUIT").startswith(b"221 ")
    s.close()
    assert qh.wait_for(lambda: "relay limit" in srv.log())
    log = srv.log()
    if logged is None:
        assert "control/" not in log
    else:
        assert logged in log
        assert log.count("control/throttlestoresize") == 1  # once per session, not per recipient


def test_an_invalid_tarpit_budget_is_logged_and_the_default_applies(qmail):
    qmail.control.write("tarpitbudget", "lots\n")
    rl.table(qmail, FAST)
    srv = qmail.smtpd()
    s = rl.session(srv)
    for _ in range(2):  # the second message is held: the default budget (20) has room
        assert s.cmd("MAIL FROM:<a@client.example>").startswith(b"250 ")
        assert s.cmd("RCPT TO:<u@test.example>").startswith(b"250 ")
        assert s.cmd("DATA").endswith(b"354 go ahead\r\n")
        assert s.cmd("Subject: x\r\n\r\nhello\r\n.").startswith(b"250 ")
    s.cmd("QUIT")
    s.close()
    assert qh.wait_for(lambda: " delay 1000ms " in srv.log())
    assert ("qmail-smtpd: throttle: control/tarpitbudget: 'lots' is not a whole number from 0 to 1000000: "
            "using the default, 20\n") in srv.log()
