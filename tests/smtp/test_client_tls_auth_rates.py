"""Client rates of TLS sessions and AUTH commands (spamt(5), CLIENT LIMITS;
patch 0072 and throttle_auth_attempt()): tlsrate= is checked before a
STARTTLS or SMTPS handshake, authrate= at every AUTH command, both per
client over a sliding window; exempt clients are not counted."""

import socket
import ssl

import qmail_harness as qh
import relaylimits as rl
import tlsauth as ta

TLS_LINE = "qmail-smtpd: throttle: client limit address 127.0.0.1 ip 127.0.0.1 tlsrate 2/2 per 1h: "
AUTH_LINE = "qmail-smtpd: throttle: client limit address 127.0.0.1 ip 127.0.0.1 authrate 3/3 per 1h: 454\n"


def ehlo(srv: qh.SmtpServer) -> qh.Session:
    s = ta.connect(srv)
    assert s.cmd("EHLO client.example").startswith(b"250-")
    return s


def queue_one_message(s: qh.Session) -> None:
    assert s.cmd("MAIL FROM:<a@client.example>") == b"250 ok\r\n"
    assert s.cmd("RCPT TO:<u@test.example>") == b"250 ok\r\n"
    assert s.cmd("DATA") == b"354 go ahead\r\n"
    s.send(b"Subject: rates\r\n\r\nhi\r\n.\r\n")
    assert s.reply().startswith(b"250 ok ")


def test_tlsrate_2_third_starttls_is_454_and_the_session_goes_on_in_clear_text(qmail):
    ta.install_cert(qmail.control)
    rl.table(qmail, "default tlsrate=2/1h\n")
    srv = qmail.smtpd()
    for _ in range(2):
        t = ta.starttls_at(srv, ta.client_context())
        assert t.cmd("QUIT").startswith(b"221 ")
        t.close()
    s = ehlo(srv)
    try:
        reply = s.cmd("STARTTLS")
        assert reply.startswith(b"454 4.7.0 too many TLS sessions from 127.0.0.1; try again in about "), reply
        assert s.cmd("NOOP") == b"250 ok\r\n"  # still plain SMTP on the same connection
        queue_one_message(s)
        assert s.cmd("QUIT").startswith(b"221 ")
    finally:
        s.close()
    [m] = qmail.queue.messages()
    assert b" with SMTP; " in m["body"]
    log = srv.log()
    assert log.count(TLS_LINE + "454\n") == 1, log
    assert log.count("tls: started") == 2, log


def test_tlsrate_2_third_smtps_connection_is_closed_without_a_handshake(qmail):
    ta.install_cert(qmail.control)
    rl.table(qmail, "default tlsrate=2/1h\n")
    srv = qmail.smtpd(env={"SMTPS": "1"})
    for _ in range(2):
        t = ta.smtps_connect(srv)
        assert t.reply() == b"220 mx.test.example ESMTP\r\n"
        t.close()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    try:
        try:
            tls = ta.client_context().wrap_socket(sock, server_hostname=ta.HOSTNAME)
        except (ssl.SSLError, OSError):
            tls = None
        assert tls is None, "the handshake succeeded"
    finally:
        sock.close()
    assert qh.wait_for(lambda: TLS_LINE + "closed\n" in srv.log())
    assert qh.wait_for(lambda: srv.children() == [])
    log = srv.log()
    assert log.count(TLS_LINE) == 1, log
    assert log.count("tls: started") == 2 and "handshake failed" not in log, log


def auth(t: qh.Session, user: str, password: str) -> bytes:
    return t.cmd("AUTH PLAIN " + ta.plain(user, password))


def test_authrate_3_counts_every_auth_command_then_454_and_the_session_goes_on(qmail):
    ta.install_cert(qmail.control)
    rl.table(qmail, "default authrate=3/1h\n")
    srv = qmail.smtpd(args=ta.auth_args())
    t = ta.starttls_at(srv, ta.client_context())
    assert auth(t, "alice", "wrong horse").startswith(b"535 5.7.8 ")
    assert auth(t, "alice", "guess").startswith(b"535 5.7.8 ")
    t.close()
    t = ta.starttls_at(srv, ta.client_context())
    try:
        assert auth(t, "alice", "correct horse").startswith(b"235 ")
        t.close()
        t = ta.starttls_at(srv, ta.client_context())
        reply = auth(t, "alice", "correct horse")
        assert reply.startswith(b"454 4.7.0 too many AUTH commands from 127.0.0.1; try again in about "), reply
        assert t.cmd("NOOP") == b"250 ok\r\n"
        assert t.cmd("MAIL FROM:<alice@test.example>") == b"250 ok\r\n"
        assert t.cmd("RCPT TO:<x@far.example>").startswith(b"553 ")  # not authenticated: no relaying
        assert auth(t, "alice", "correct horse").startswith(b"454 4.7.0 too many AUTH commands")
        assert t.cmd("QUIT").startswith(b"221 ")
    finally:
        t.close()
    log = srv.log()
    assert log.count(AUTH_LINE) == 2, log
    assert log.count("auth: refused user alice") == 2 and log.count("auth: accepted user alice") == 1, log


def test_exempt_clients_are_not_counted(qmail):
    ta.install_cert(qmail.control)
    rl.table(qmail, "default tlsrate=1/1h authrate=1/1h\n127.0.0.1 exempt\n")
    srv = qmail.smtpd(args=ta.auth_args())
    for _ in range(3):
        t = ta.starttls_at(srv, ta.client_context())
        try:
            assert auth(t, "alice", "wrong horse").startswith(b"535 5.7.8 ")
            assert auth(t, "alice", "correct horse").startswith(b"235 ")
        finally:
            t.close()
    assert "client limit" not in srv.log()
