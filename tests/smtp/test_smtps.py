"""SMTPS: with SMTPS set, TLS starts before the greeting (port 465)."""

import socket
import subprocess

import qmail_harness as qh
import tlsauth as ta


def test_smtps_greets_over_tls_and_marks_received_esmtps(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(env={"SMTPS": "1"})
    t = ta.smtps_connect(srv)
    assert t.reply() == b"220 mx.test.example ESMTP\r\n"
    assert ta.ehlo_keywords(t.cmd("EHLO client.example")) == ["PIPELINING", "8BITMIME"]
    assert t.cmd("STARTTLS") == b"503 5.5.1 TLS already active\r\n"
    t.cmd("MAIL FROM:<a@client.example>")
    t.cmd("RCPT TO:<u@test.example>")
    assert t.cmd("DATA") == b"354 go ahead\r\n"
    t.send(b"Subject: smtps\r\n\r\nhi\r\n.\r\n")
    assert t.reply().startswith(b"250 ok ")
    assert t.cmd("QUIT") == b"221 mx.test.example\r\n"
    t.close()
    [m] = qmail.queue.messages()
    assert b" with ESMTPS; " in m["body"]


def test_swaks_tls_on_connect_with_auth(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(env={"SMTPS": "1"}, args=ta.auth_args())
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port), "--tls-on-connect",
                        "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "correct horse",
                        "--helo", "client.example", "--from", "alice@test.example", "--to", "x@far.example"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0 authentication successful" in r.stdout
    [m] = qmail.queue.messages()
    assert m["rcpts"] == ["x@far.example"]
    assert b" with ESMTPSA; " in m["body"]


def test_smtps_without_certificate_closes_and_logs(qmail):
    srv = qmail.smtpd(env={"SMTPS": "1"})
    s = qh.Session(srv.connect())
    assert s.rest() == b""  # no greeting in plain text, no hang
    s.close()
    assert qh.wait_for(lambda: "qmail-smtpd: tls: unavailable ip 127.0.0.1 reason cannot use "
                               "control/servercert.pem" in srv.log())


def test_smtps_client_speaking_plain_text_is_dropped(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(env={"SMTPS": "1"})
    s = qh.Session(srv.connect())
    s.send(b"EHLO client.example\r\n")
    assert s.rest() == b""
    s.close()
    assert qh.wait_for(lambda: "qmail-smtpd: tls: handshake failed ip 127.0.0.1" in srv.log())


def test_smtps_0_means_off(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(env={"SMTPS": "0"})
    s = qh.Session(socket.create_connection(("127.0.0.1", srv.port), timeout=60))
    assert s.reply() == b"220 mx.test.example ESMTP\r\n"
    s.close()
