"""STARTTLS (RFC 3207) in the real qmail-smtpd under tcpserver: offered only
with a certificate, TLS 1.2 or newer, pre-TLS input discarded, session state
reset, failures logged and the session ended cleanly."""

import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import warnings

import qmail_harness as qh
import tlsauth as ta

MSG = b"Subject: over tls\r\n\r\nhello\r\n.\r\n"


def test_starttls_is_offered_with_a_certificate_and_delivers(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd()
    s = ta.connect(srv)
    assert ta.ehlo_keywords(s.cmd("EHLO client.example")) == ["PIPELINING", "STARTTLS", "8BITMIME"]
    t = ta.starttls(s)
    assert t.sock.version() in ("TLSv1.2", "TLSv1.3")
    # inside TLS STARTTLS is no longer offered, and AUTH is not configured
    assert ta.ehlo_keywords(t.cmd("EHLO client.example")) == ["PIPELINING", "8BITMIME"]
    assert t.cmd("STARTTLS") == b"503 5.5.1 TLS already active\r\n"
    assert t.cmd("MAIL FROM:<a@client.example>") == b"250 ok\r\n"
    assert t.cmd("RCPT TO:<u@test.example>") == b"250 ok\r\n"
    assert t.cmd("RCPT TO:<x@elsewhere.example>").startswith(b"553 ")  # TLS alone grants no relaying
    assert t.cmd("DATA") == b"354 go ahead\r\n"
    t.send(MSG)
    assert t.reply().startswith(b"250 ok ")
    assert t.cmd("QUIT") == b"221 mx.test.example\r\n"
    t.close()
    [m] = qmail.queue.messages()
    assert b" with ESMTPS; " in m["body"]
    assert qh.wait_for(lambda: "qmail-smtpd: tls: started ip 127.0.0.1 version TLSv1." in srv.log())


def smtpd_maps(srv) -> str:
    """The memory map of the one qmail-smtpd running under srv's tcpserver."""
    pids = subprocess.run(["pgrep", "-P", str(srv.proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(pids) == 1, pids
    return open(f"/proc/{pids[0]}/maps").read()


def test_openssl_is_loaded_only_when_a_session_starts_tls(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(args=ta.auth_args())  # TLS and AUTH configured
    s = ta.connect(srv)
    s.cmd("EHLO client.example")
    s.cmd("MAIL FROM:<a@client.example>")
    maps = smtpd_maps(srv)
    assert "libssl" not in maps and "libcrypto" not in maps
    t = ta.starttls(s)
    assert t.cmd("NOOP") == b"250 ok\r\n"
    maps = smtpd_maps(srv)
    assert "libssl.so.3" in maps and "libcrypto.so.3" in maps
    t.close()


def test_plain_sessions_stay_stock_with_a_certificate_present(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd()
    s = ta.connect(srv)
    s.cmd("EHLO client.example")
    s.cmd("MAIL FROM:<a@client.example>")
    s.cmd("RCPT TO:<u@test.example>")
    assert s.cmd("DATA") == b"354 go ahead\r\n"
    s.send(MSG)
    s.reply()
    s.cmd("QUIT")
    s.close()
    [m] = qmail.queue.messages()
    assert b" with SMTP; " in m["body"]
    assert srv.log() == ""


def test_without_certificate_or_with_disabletls_starttls_is_unimplemented(qmail):
    for env, cert in (({}, False), ({"DISABLETLS": "1"}, True)):
        if cert:
            ta.install_cert(qmail.control)
        srv = qmail.smtpd(env=env)
        s = ta.connect(srv)
        assert "STARTTLS" not in ta.ehlo_keywords(s.cmd("EHLO client.example"))
        assert s.cmd("STARTTLS") == b"502 unimplemented (#5.5.1)\r\n"
        s.close()
        srv.stop()
    # DISABLETLS=0 means "not disabled"
    srv = qmail.smtpd(env={"DISABLETLS": "0"})
    s = ta.connect(srv)
    assert "STARTTLS" in ta.ehlo_keywords(s.cmd("EHLO client.example"))
    s.close()


def test_unreadable_certificate_is_not_offered_and_logged(qmail):
    path = ta.install_cert(qmail.control)
    os.chmod(path, 0o600)  # root only: qmaild cannot read it
    srv = qmail.smtpd()
    s = ta.connect(srv)
    assert "STARTTLS" not in ta.ehlo_keywords(s.cmd("EHLO client.example"))
    s.close()
    assert qh.wait_for(lambda: "qmail-smtpd: tls: not offered ip 127.0.0.1 reason cannot read "
                               "control/servercert.pem: Permission denied" in srv.log())


def test_swaks_with_tls(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd()
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port), "--tls",
                        "--tls-verify", "--tls-ca-path", str(ta.certificate()[1]),
                        "--helo", "client.example", "--from", "a@client.example", "--to", "u@test.example"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TLS started with cipher TLSv1." in r.stdout
    assert len(qmail.queue.messages()) == 1


def test_openssl_s_client_starttls_smtp_as_in_the_seed_report(qmail):
    # the seed's submission service: SMTPAUTH="!", checkpassword and /bin/true
    # on the command line, under softlimit; its STARTTLS hung after CONNECTED
    ta.install_cert(qmail.control)
    srv = qmail.smtpd(smtpd="/usr/bin/softlimit",
                      args=["-m", "100000000", str(qh.PATCHED_SMTPD), *ta.auth_args("/bin/true")],
                      env={"SMTPAUTH": "!"})
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-crlf", "-ign_eof", "-quiet",
                        "-connect", f"127.0.0.1:{srv.port}", "-CAfile", str(ta.certificate()[1]),
                        "-verify_hostname", ta.HOSTNAME, "-verify_return_error"],
                       input=b"EHLO client.example\nMAIL FROM:<a@client.example>\nQUIT\n",
                       capture_output=True, timeout=60)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "250-AUTH LOGIN PLAIN\r\n" in out
    assert "530 5.7.0 authentication required\r\n" in out
    assert out.endswith("221 mx.test.example\r\n")


def test_pre_tls_commands_are_discarded(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd()
    s = ta.connect(srv)
    s.cmd("EHLO client.example")
    # one packet: STARTTLS plus commands an attacker slipped in behind it
    s.send(b"STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\nRSET\r\n")
    assert s.reply() == b"220 2.0.0 ready to start TLS\r\n"
    assert s.buf == b""
    t = qh.Session(ta.client_context().wrap_socket(s.sock, server_hostname=ta.HOSTNAME))
    # the first reply under TLS answers our EHLO, not the injected commands
    assert t.cmd("EHLO client.example").startswith(b"250-mx.test.example\r\n")
    assert t.cmd("RCPT TO:<u@test.example>") == b"503 MAIL first (#5.5.1)\r\n"
    assert t.cmd("QUIT") == b"221 mx.test.example\r\n"
    assert t.rest() == b""
    t.close()


def test_helo_and_mail_before_tls_are_forgotten(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd()
    s = ta.connect(srv)
    s.cmd("HELO before-tls.example")
    assert s.cmd("MAIL FROM:<early@client.example>") == b"250 ok\r\n"
    t = ta.starttls(s)
    assert t.cmd("RCPT TO:<u@test.example>") == b"503 MAIL first (#5.5.1)\r\n"
    t.cmd("MAIL FROM:<a@client.example>")
    t.cmd("RCPT TO:<u@test.example>")
    t.cmd("DATA")
    t.send(MSG)
    assert t.reply().startswith(b"250 ok ")
    t.close()
    [m] = qmail.queue.messages()
    assert m["sender"] == "a@client.example"
    assert b"before-tls" not in m["body"]  # no "(HELO before-tls.example)"


def test_starttls_with_a_parameter_is_a_syntax_error(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd()
    s = ta.connect(srv)
    assert s.cmd("STARTTLS now") == b"501 5.5.4 syntax error (no parameters allowed)\r\n"
    assert s.cmd("NOOP") == b"250 ok\r\n"
    s.close()


def tls_connect(port: int, ctx: ssl.SSLContext) -> str:
    """STARTTLS with this client context; the negotiated version or the error."""
    s = qh.Session(socket.create_connection(("127.0.0.1", port), timeout=60))
    try:
        s.reply()
        s.cmd("EHLO client.example")
        assert s.cmd("STARTTLS").startswith(b"220 ")
        try:
            return ctx.wrap_socket(s.sock, server_hostname=ta.HOSTNAME).version()
        except (ssl.SSLError, ConnectionError) as e:
            return f"refused: {e}"
    finally:
        s.close()


def test_tls_1_1_is_refused_even_when_the_ciphers_would_allow_it(qmail):
    ta.install_cert(qmail.control)
    # security level 0 would let OpenSSL itself speak TLS 1.1 (an "openssl
    # s_server -cipher DEFAULT:@SECLEVEL=0" does): the floor is ours
    qmail.control.write("tlsserverciphers", "DEFAULT:@SECLEVEL=0\n")
    srv = qmail.smtpd()
    with warnings.catch_warnings():  # Python deprecates what we want to prove refused
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ta.client_context(minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    result = tls_connect(srv.port, old)
    assert result.startswith("refused:"), result
    assert "VERSION" in result.upper()
    assert qh.wait_for(lambda: "qmail-smtpd: tls: handshake failed ip 127.0.0.1 reason" in srv.log())
    assert "unsupported protocol" in srv.log()
    v12 = ta.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    v12.set_ciphers("DEFAULT:@SECLEVEL=0")
    assert tls_connect(srv.port, v12) == "TLSv1.2"
    assert tls_connect(srv.port, ta.client_context()) == "TLSv1.3"


def test_ciphers_from_control_file_and_tlsciphers(qmail):
    ta.install_cert(qmail.control)
    qmail.control.write("tlsserverciphers", "ECDHE-ECDSA-AES128-GCM-SHA256\nTLS_CHACHA20_POLY1305_SHA256\n")
    srv = qmail.smtpd()
    for version, expected in ((ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256"),
                              (ssl.TLSVersion.TLSv1_3, "TLS_CHACHA20_POLY1305_SHA256")):
        s = ta.connect(srv)
        t = ta.starttls(s, ta.client_context(maximum_version=version))
        assert t.sock.cipher()[0] == expected
        t.close()
    srv.stop()
    # TLSCIPHERS takes precedence over the control file
    srv = qmail.smtpd(env={"TLSCIPHERS": "ECDHE-ECDSA-AES256-GCM-SHA384"})
    s = ta.connect(srv)
    t = ta.starttls(s, ta.client_context(maximum_version=ssl.TLSVersion.TLSv1_2))
    assert t.sock.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    t.close()


def test_unusable_ciphers_or_certificate_answer_454_and_log(qmail):
    ta.install_cert(qmail.control)
    qmail.control.write("tlsserverciphers", "NO-SUCH-CIPHER\n")
    srv = qmail.smtpd()
    s = ta.connect(srv)
    assert s.cmd("STARTTLS") == b"454 4.7.0 TLS not available due to temporary reason\r\n"
    assert s.cmd("NOOP") == b"250 ok\r\n"  # the session goes on in plain text
    s.close()
    assert qh.wait_for(lambda: 'tls: unavailable ip 127.0.0.1 reason no usable TLS 1.2 cipher in "NO-SUCH-CIPHER"'
                       in srv.log())
    srv.stop()
    qmail.control.remove("tlsserverciphers")
    ta.install_cert(qmail.control, ta.certificate()[0].split(b"-----BEGIN PRIVATE KEY-----")[0])  # no key
    srv = qmail.smtpd()
    s = ta.connect(srv)
    assert s.cmd("STARTTLS").startswith(b"454 4.7.0 ")
    s.close()
    assert qh.wait_for(lambda: "tls: unavailable ip 127.0.0.1 reason cannot use control/servercert.pem" in srv.log())


def test_openssl_that_cannot_be_loaded_answers_454_and_logs(qmail):
    ta.install_cert(qmail.control)
    fake = ta.record_dir("fake-openssl")
    (fake / "libssl.so.3").write_bytes(b"")  # found first through LD_LIBRARY_PATH: not a library
    (fake / "libcrypto.so.3").write_bytes(b"")
    srv = qmail.smtpd(env={"LD_LIBRARY_PATH": str(fake)})
    s = ta.connect(srv)
    assert "STARTTLS" in ta.ehlo_keywords(s.cmd("EHLO client.example"))  # loaded only when used
    assert s.cmd("STARTTLS") == b"454 4.7.0 TLS not available due to temporary reason\r\n"
    assert s.cmd("QUIT") == b"221 mx.test.example\r\n"
    s.close()
    assert qh.wait_for(lambda: "qmail-smtpd: tls: unavailable ip 127.0.0.1 reason cannot load OpenSSL: " in srv.log())
    srv.stop()
    # a library that loads but is not OpenSSL
    shutil.copy("/lib/x86_64-linux-gnu/libm.so.6", fake / "libssl.so.3")
    shutil.copy("/lib/x86_64-linux-gnu/libm.so.6", fake / "libcrypto.so.3")
    srv = qmail.smtpd(env={"LD_LIBRARY_PATH": str(fake)})
    s = ta.connect(srv)
    assert s.cmd("STARTTLS").startswith(b"454 ")
    s.close()
    assert qh.wait_for(lambda: "reason OpenSSL lacks OPENSSL_init_ssl" in srv.log())


def test_failed_handshake_is_logged_and_ends_the_session(qmail):
    ta.install_cert(qmail.control)
    srv = qmail.smtpd()
    s = ta.connect(srv)
    assert s.cmd("STARTTLS") == b"220 2.0.0 ready to start TLS\r\n"
    s.send(b"EHLO this is not a TLS ClientHello\r\n")
    assert s.rest() == b""  # closed, nothing in plain text
    s.close()
    assert qh.wait_for(lambda: "qmail-smtpd: tls: handshake failed ip 127.0.0.1 reason " in srv.log())


def test_stalled_handshake_ends_at_the_smtp_timeout(qmail):
    ta.install_cert(qmail.control)
    qmail.control.write("timeoutsmtpd", "2\n")
    srv = qmail.smtpd()
    s = ta.connect(srv, timeout=60)
    assert s.cmd("STARTTLS").startswith(b"220 ")
    t0 = time.monotonic()
    assert s.rest() == b""  # the client never says hello: the server gives up
    assert 1.5 < time.monotonic() - t0 < 30  # after timeoutsmtpd (2 s), not never
    s.close()
    assert qh.wait_for(lambda: "tls: handshake failed ip 127.0.0.1 reason timeout" in srv.log())


def test_idle_tls_session_times_out_with_451(qmail):
    ta.install_cert(qmail.control)
    qmail.control.write("timeoutsmtpd", "2\n")
    srv = qmail.smtpd()
    s = ta.connect(srv, timeout=60)
    t = ta.starttls(s)
    t0 = time.monotonic()
    assert t.reply() == b"451 timeout (#4.4.2)\r\n"  # stock's reply, sent over TLS
    assert 1.5 < time.monotonic() - t0 < 30  # after timeoutsmtpd (2 s), not never
    t.close()


def other_certificate(name: str) -> bytes:
    """A second self-signed certificate, chain then key, for `name`."""
    d = ta.WORK / f"cert-{name}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True, timeout=60)
    return (d / "cert.pem").read_bytes() + (d / "key.pem").read_bytes()


def served_certificate(srv, name: str | None) -> bytes:
    """STARTTLS asking for `name` (SNI; None: no name); the DER certificate served."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ta.connect(srv)
    s.cmd("EHLO client.example")
    assert s.cmd("STARTTLS") == b"220 2.0.0 ready to start TLS\r\n"
    t = ctx.wrap_socket(s.sock, server_hostname=name)
    der = t.getpeercert(binary_form=True)
    session = qh.Session(t)
    assert session.cmd("QUIT") == b"221 mx.test.example\r\n"
    session.close()
    return der


def test_sni_serves_the_certificate_of_the_name_asked_for(qmail):
    ta.install_cert(qmail.control)
    default = ssl.PEM_cert_to_DER_cert(ta.certificate()[0].decode().split("-----BEGIN PRIVATE KEY")[0])
    other_pem = other_certificate("mail.other.example")
    other = ssl.PEM_cert_to_DER_cert(other_pem.decode().split("-----BEGIN PRIVATE KEY")[0])
    gid = qh.uid_gid()[1]
    certs = qmail.control.path("servercerts")
    certs.mkdir(mode=0o750)
    os.chown(certs, 0, gid)
    for name, pem in (("mail.other.example.pem", other_pem), ("broken.example.pem", b"not a certificate\n")):
        (certs / name).write_bytes(pem)
        os.chmod(certs / name, 0o640)
        os.chown(certs / name, 0, gid)
    try:
        sni_checks(qmail, default, other)
    finally:
        shutil.rmtree(certs)


def sni_checks(qmail, default: bytes, other: bytes) -> None:
    srv = qmail.smtpd()
    assert served_certificate(srv, "mail.other.example") == other
    assert served_certificate(srv, "mx.test.example") == default  # no file of its own
    assert served_certificate(srv, None) == default
    assert served_certificate(srv, "broken.example") == default  # unusable: the default, and a log line
    log = srv.log()
    assert re.search(r"qmail-smtpd: tls: started ip 127\.0\.0\.1 version TLSv1\.[23] cipher \S+ "
                     r"certificate control/servercerts/mail\.other\.example\.pem\n", log), log
    assert "qmail-smtpd: tls: sni certificate unusable ip 127.0.0.1 reason cannot use " \
           "control/servercerts/broken.example.pem: " in log
    assert log.count("certificate control/servercerts/") == 1
