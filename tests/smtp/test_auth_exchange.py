"""The AUTH exchange (RFC 4954) under protocol errors: every one gets a clean
reply, the session goes on, nothing counts as a failed login."""

import qmail_harness as qh
import tlsauth as ta


def session(qmail, tls=True, **kw):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=ta.auth_args(), **kw)
    s = ta.connect(srv)
    return srv, (ta.starttls(s) if tls else s)


def test_auth_is_neither_offered_nor_accepted_before_tls(qmail):
    srv, s = session(qmail, tls=False)
    assert ta.ehlo_keywords(s.cmd("EHLO client.example")) == ["PIPELINING", "STARTTLS", "8BITMIME"]
    assert s.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")) == \
        b"538 5.7.11 encryption required for requested authentication mechanism\r\n"
    t = ta.starttls(s)
    assert ta.ehlo_keywords(t.cmd("EHLO client.example")) == ["PIPELINING", "AUTH LOGIN PLAIN", "8BITMIME"]
    assert t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")).startswith(b"235 ")
    t.close()
    assert "auth: refused" not in srv.log()


def test_protocol_errors_get_clean_replies(qmail):
    srv, t = session(qmail)
    assert t.cmd("AUTH CRAM-MD5") == b"504 5.5.4 unrecognized authentication mechanism\r\n"
    assert t.cmd("AUTH") == b"501 5.5.4 syntax error in AUTH command\r\n"
    assert t.cmd("AUTH PLAIN abc def") == b"501 5.5.4 syntax error in AUTH command\r\n"
    assert t.cmd("AUTH PLAIN not-base64!") == b"501 5.5.2 cannot decode response\r\n"
    assert t.cmd("AUTH PLAIN " + ta.b64("alice")) == b"501 5.5.2 cannot decode response\r\n"  # no NULs
    assert t.cmd("AUTH PLAIN =") == b"501 5.5.2 cannot decode response\r\n"  # empty response
    assert t.cmd("AUTH LOGIN") == b"334 VXNlcm5hbWU6\r\n"
    assert t.cmd("%%%%") == b"501 5.5.2 cannot decode response\r\n"
    assert t.cmd("AUTH LOGIN") == b"334 VXNlcm5hbWU6\r\n"
    assert t.cmd(ta.b64("alice")) == b"334 UGFzc3dvcmQ6\r\n"
    assert t.cmd("*") == b"501 5.0.0 authentication cancelled\r\n"
    assert t.cmd("AUTH PLAIN") == b"334 \r\n"
    assert t.cmd("A" * 20000) == b"500 5.5.6 authentication exchange line is too long\r\n"
    assert t.cmd("AUTH PLAIN " + "A" * 13000) == b"500 5.5.6 authentication exchange line is too long\r\n"
    assert t.cmd("NOOP") == b"250 ok\r\n"
    # after all that, a correct login still works: none of it was a failure
    assert t.cmd("AUTH PLAIN") == b"334 \r\n"
    assert t.cmd(ta.plain("alice", "correct horse")) == b"235 2.7.0 authentication successful\r\n"
    assert t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")) == b"503 5.5.1 already authenticated\r\n"
    t.close()
    assert "auth: refused" not in srv.log()


def test_auth_during_a_mail_transaction_is_refused(qmail):
    srv, t = session(qmail)
    assert t.cmd("MAIL FROM:<a@client.example>") == b"250 ok\r\n"
    assert t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")) == \
        b"503 5.5.1 AUTH not permitted during a mail transaction\r\n"
    assert t.cmd("RSET") == b"250 flushed\r\n"
    assert t.cmd("AUTH PLAIN " + ta.plain("alice", "correct horse")).startswith(b"235 ")
    t.close()


def test_client_leaving_in_the_middle_of_an_exchange(qmail):
    srv, t = session(qmail)
    assert t.cmd("AUTH LOGIN") == b"334 VXNlcm5hbWU6\r\n"
    t.send(ta.b64("alice").encode())  # no line end, then gone
    t.close()
    srv2_s = qh.Session(srv.connect())  # the server is still there for the next client
    assert srv2_s.reply() == b"220 mx.test.example ESMTP\r\n"
    srv2_s.close()
    assert "auth:" not in srv.log()
