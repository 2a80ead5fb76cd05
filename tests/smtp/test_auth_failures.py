"""Refused and failing AUTH: 535 5.7.8 after a growing delay, the third
failure of a session ends it with 421, temporary problems are 454 and do not
count, and no password reaches the log."""

import json
import subprocess
import time

import qmail_harness as qh
import tlsauth as ta


def tls_session(srv):
    s = ta.connect(srv, timeout=60)
    return ta.starttls(s)


def test_wrong_password_is_refused_after_a_delay_and_grants_nothing(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=ta.auth_args())
    t = tls_session(srv)
    t0 = time.monotonic()
    assert t.cmd("AUTH PLAIN " + ta.plain("alice", "wrong horse")) == \
        b"535 5.7.8 authentication credentials invalid\r\n"
    assert time.monotonic() - t0 >= 1.0
    t.cmd("MAIL FROM:<alice@test.example>")
    assert t.cmd("RCPT TO:<x@far.example>").startswith(b"553 ")  # no relaying
    t.close()
    log = srv.log()
    assert "qmail-smtpd: auth: refused user alice ip 127.0.0.1 mechanism PLAIN failure 1/3\n" in log
    assert "wrong horse" not in log and ta.plain("alice", "wrong horse") not in log


def test_swaks_with_a_wrong_password_fails(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=ta.auth_args())
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port), "--tls",
                        "--auth", "LOGIN", "--auth-user", "nobody", "--auth-password", "guess",
                        "--from", "a@client.example", "--to", "x@far.example"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "535 5.7.8 authentication credentials invalid" in r.stdout
    assert qmail.queue.messages() == []


def test_third_failure_in_a_session_answers_421_and_closes(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=ta.auth_args())
    t = tls_session(srv)
    t0 = time.monotonic()
    assert t.cmd("AUTH PLAIN " + ta.plain("alice", "guess 1")).startswith(b"535 5.7.8 ")
    t1 = time.monotonic()
    assert t.cmd("AUTH LOGIN " + ta.b64("alice")) == b"334 UGFzc3dvcmQ6\r\n"
    assert t.cmd(ta.b64("guess 2")).startswith(b"535 5.7.8 ")
    t2 = time.monotonic()
    assert t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse", authzid="root")).startswith(b"421 4.7.0 ")
    t3 = time.monotonic()
    assert t.rest() == b""  # the server has closed the connection
    t.close()
    # the n-th failure of a session waits n seconds
    assert t1 - t0 >= 1.0 and t2 - t1 >= 2.0 and t3 - t2 >= 3.0
    log = srv.log()
    assert "mechanism LOGIN failure 2/3\n" in log
    assert "mechanism PLAIN failure 3/3 reason authorization identity: 421\n" in log


def test_temporary_failures_are_454_and_do_not_count(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=ta.auth_args())
    t = tls_session(srv)
    for _ in range(3):
        assert t.cmd("AUTH PLAIN " + ta.plain("tempfail", "x")) == b"454 4.7.0 temporary authentication failure\r\n"
    assert t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")).startswith(b"235 ")
    t.close()
    assert "auth: temporary failure user tempfail ip 127.0.0.1 mechanism PLAIN reason exit 111" in srv.log()


def test_hung_checkpassword_is_killed_at_the_timeout(qmail):
    ta.install_cert(qmail.control)
    qmail.control.write("timeoutsmtpd", "2\n")
    record = ta.record_dir("checkpassword") / "calls"
    srv = qmail.smtpd(args=ta.auth_args(), env={"CHECKPASSWORD_RECORD": str(record)})
    t = tls_session(srv)
    t0 = time.monotonic()
    assert t.cmd("AUTH PLAIN " + ta.plain("sleeper", "zzz")).startswith(b"454 4.7.0 ")
    assert 1.5 < time.monotonic() - t0 < 30  # after timeoutsmtpd (2 s), not never
    assert t.cmd("NOOP") == b"250 ok\r\n"
    t.close()
    assert json.loads(record.read_text())["user"] == "sleeper"
    assert "reason no answer within 2 seconds" in srv.log()
    # the program itself (python3 runs it); tcpserver's and qmail-smtpd's
    # command lines name it too
    assert qh.wait_for(lambda: subprocess.run(["pgrep", "-f", f"python3 {ta.CHECKPASSWORD}"],
                                              capture_output=True).stdout == b""), \
        "the hung checkpassword is still running"


def test_checkpassword_that_cannot_run_is_a_temporary_failure(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=["/nonexistent/checkpassword", "/bin/true"])
    t = tls_session(srv)
    assert t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")).startswith(b"454 4.7.0 ")
    t.close()
    assert "reason cannot run /nonexistent/checkpassword: No such file or directory" in srv.log()


def test_subprogram_failing_means_refused(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=ta.auth_args("/bin/false"))
    t = tls_session(srv)
    assert t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")).startswith(b"535 5.7.8 ")
    t.close()
