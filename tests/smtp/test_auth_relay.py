"""A successful AUTH: relaying, SMTPAUTHUSER for qmail-queue, ESMTPA/ESMTPSA
in the Received line, the identity relay limits will key on, the log line,
and the checkpassword interface as qmail-popup uses it."""

import json
import smtplib
import subprocess

import qmail_harness as qh
import tlsauth as ta


def test_swaks_starttls_auth_plain_relays_and_reaches_qmail_queue(qmail):
    ta.install_cert(qmail.control)
    recorder, environments = ta.queue_env_recorder()
    record = ta.record_dir("checkpassword") / "calls"
    srv = qmail.smtpd(args=ta.auth_args(), env={"QMAILQUEUE": recorder, "CHECKPASSWORD_RECORD": str(record)})
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port), "--tls",
                        "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "correct horse",
                        "--helo", "client.example", "--from", "alice@test.example", "--to", "friend@far.example"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<~  250-AUTH LOGIN PLAIN" in r.stdout
    assert "<~  235 2.7.0 authentication successful" in r.stdout
    [m] = qmail.queue.messages()
    assert m["rcpts"] == ["friend@far.example"]  # relayed: not in rcpthosts
    assert b" with ESMTPSA; " in m["body"]
    [env] = environments()
    assert env["SMTPAUTHUSER"] == "alice"
    log = srv.log()
    assert ("qmail-smtpd: auth: accepted user alice ip 127.0.0.1 mechanism PLAIN identity alice@test.example\n"
            in log)
    assert "correct horse" not in log and ta.plain("alice", "correct horse") not in log
    [call] = [json.loads(line) for line in record.read_text().splitlines()]
    # user NUL password NUL timestamp NUL with an empty timestamp; the client
    # connection is out of the program's reach
    assert call == {"user": "alice", "timestamp": "", "length": 5 + 1 + 13 + 1 + 1, "fd0": "devnull",
                    "fd1": "other", "ok": True}


def test_python_smtplib_login_over_starttls(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=ta.auth_args())
    with smtplib.SMTP("127.0.0.1", srv.port, local_hostname="client.example", timeout=60) as c:
        c.starttls(context=ta.client_context(check_hostname=False))  # connected by address
        c.ehlo("client.example")
        assert c.has_extn("auth") and c.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        c.login("bob@other.example", "s3cret")
        c.sendmail("bob@other.example", ["x@far.example"], b"Subject: smtplib\r\n\r\nhi\r\n")
    [m] = qmail.queue.messages()
    assert m["rcpts"] == ["x@far.example"]
    assert qh.wait_for(lambda: "user bob@other.example ip 127.0.0.1 mechanism" in srv.log())
    assert "identity bob@other.example" in srv.log()  # a full address stays as it is


def test_auth_login_without_tls_when_forcetls_is_0_says_esmtpa(qmail):
    srv = qmail.smtpd(args=ta.auth_args(), env={"FORCETLS": "0"})  # no certificate at all
    s = ta.connect(srv)
    assert ta.ehlo_keywords(s.cmd("EHLO client.example")) == ["PIPELINING", "AUTH LOGIN PLAIN", "8BITMIME"]
    assert s.cmd("AUTH LOGIN") == b"334 VXNlcm5hbWU6\r\n"
    assert s.cmd(ta.b64("alice")) == b"334 UGFzc3dvcmQ6\r\n"
    assert s.cmd(ta.b64("correct horse")) == b"235 2.7.0 authentication successful\r\n"
    s.cmd("MAIL FROM:<alice@test.example>")
    assert s.cmd("RCPT TO:<x@far.example>") == b"250 ok\r\n"
    s.cmd("DATA")
    s.send(b"Subject: plain auth\r\n\r\nhi\r\n.\r\n")
    assert s.reply().startswith(b"250 ok ")
    s.close()
    [m] = qmail.queue.messages()
    assert b" with ESMTPA; " in m["body"]


def test_bare_user_is_completed_with_defaultdomain_else_me(qmail):
    ta.install_cert(qmail.control)
    for control, expected in ((None, "alice@test.example"), ("defaultdomain", "alice@mx.test.example")):
        if control:
            qmail.control.remove(control)
        srv = qmail.smtpd(args=ta.auth_args())
        s = ta.connect(srv)
        t = ta.starttls(s)
        assert t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")).startswith(b"235 ")
        t.close()
        assert qh.wait_for(lambda: f"identity {expected}\n" in srv.log()), srv.log()
        srv.stop()


def test_non_ascii_password_and_pipelined_auth(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=ta.auth_args())
    s = ta.connect(srv)
    t = ta.starttls(s)
    t.send(("EHLO client.example\r\nAUTH PLAIN " + ta.plain("carol", "\u00e9t\u00e9 caf\u00e9") +
            "\r\nMAIL FROM:<carol@test.example>\r\nRCPT TO:<x@far.example>\r\n").encode())
    assert t.reply().startswith(b"250-")
    assert t.reply() == b"235 2.7.0 authentication successful\r\n"
    assert t.reply() == b"250 ok\r\n"
    assert t.reply() == b"250 ok\r\n"
    t.close()


def test_smtpauth_required_refuses_mail_until_auth(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=ta.auth_args(), env={"SMTPAUTH": "!"})
    s = ta.connect(srv)
    assert s.cmd("MAIL FROM:<a@client.example>") == b"530 5.7.0 must issue a STARTTLS command first\r\n"
    t = ta.starttls(s)
    assert t.cmd("MAIL FROM:<a@client.example>") == b"530 5.7.0 authentication required\r\n"
    assert t.cmd("RCPT TO:<u@test.example>") == b"503 MAIL first (#5.5.1)\r\n"
    assert t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")).startswith(b"235 ")
    assert t.cmd("MAIL FROM:<a@client.example>") == b"250 ok\r\n"
    assert t.cmd("STARTTLS") == b"503 5.5.1 TLS already active\r\n"
    t.close()


def test_required_without_a_checkpassword_program_fails_closed(qmail):
    srv = qmail.smtpd(env={"SMTPAUTH": "!"})
    s = ta.connect(srv)
    assert s.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")) == b"502 unimplemented (#5.5.1)\r\n"
    assert s.cmd("MAIL FROM:<a@client.example>") == b"530 5.7.0 authentication required\r\n"
    s.close()


def test_starttls_after_auth_is_refused(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=ta.auth_args(), env={"FORCETLS": "0"})
    s = ta.connect(srv)
    assert s.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")).startswith(b"235 ")
    assert s.cmd("STARTTLS") == b"503 5.5.1 STARTTLS not permitted after AUTH\r\n"
    s.close()


def test_auth_off_or_unconfigured_is_stock_unimplemented(qmail):
    ta.install_cert(qmail.control)
    for args, env in (([], {}), (ta.auth_args(), {"SMTPAUTH": "-"})):
        srv = qmail.smtpd(args=args, env=env)
        s = ta.connect(srv)
        t = ta.starttls(s)
        assert ta.ehlo_keywords(t.cmd("EHLO client.example")) == ["PIPELINING", "8BITMIME"]
        assert t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")) == b"502 unimplemented (#5.5.1)\r\n"
        t.close()
        srv.stop()
