"""STARTTLS and SMTP AUTH: a submission service (SMTPAUTH="!") with a
checkpassword program; AUTH only under TLS, a wrong password, a relayed
message marked ESMTPSA, SMTPAUTHUSER for qmail-queue."""

import qmail_harness as qh
import tlsauth as ta


def exchange(d, s, line):
    d.show("C", line.encode() + b"\r\n")
    reply = s.cmd(line)
    d.show("S", reply)
    return reply


def demo(d):
    ta.install_cert(d.control)
    recorder, environments = ta.queue_env_recorder()
    srv = d.smtpd(args=ta.auth_args(), env={"SMTPAUTH": "!", "QMAILQUEUE": recorder})
    print(f"  control/servercert.pem installed; qmail-smtpd {' '.join(ta.auth_args())}, SMTPAUTH='!'")
    print("  (QMAILQUEUE records its environment, then runs qmail-queue)")

    s = qh.Session(srv.connect())
    d.show("S", s.reply())
    exchange(d, s, "EHLO client.example")
    exchange(d, s, "MAIL FROM:<alice@test.example>")
    exchange(d, s, "AUTH PLAIN " + ta.plain("alice", "correct horse"))
    exchange(d, s, "STARTTLS")
    t = qh.Session(ta.client_context().wrap_socket(s.sock, server_hostname=ta.HOSTNAME))
    print(f"  -- TLS handshake: {t.sock.version()} {t.sock.cipher()[0]} --")
    exchange(d, t, "EHLO client.example")
    exchange(d, t, "AUTH PLAIN " + ta.plain("alice", "wrong horse"))
    exchange(d, t, "AUTH LOGIN")
    exchange(d, t, ta.b64("alice"))
    exchange(d, t, ta.b64("correct horse"))
    exchange(d, t, "MAIL FROM:<alice@test.example>")
    exchange(d, t, "RCPT TO:<friend@far.example>")
    exchange(d, t, "DATA")
    d.show("C", b"Subject: demo\r\n\r\nsent by an authenticated user\r\n.\r\n")
    t.send(b"Subject: demo\r\n\r\nsent by an authenticated user\r\n.\r\n")
    d.show("S", t.reply())
    exchange(d, t, "QUIT")
    t.close()

    for m in d.queue.messages():
        received = [line for line in m["body"].decode().splitlines() if " with E" in line or "HELO" in line]
        print(f"  queued for {m['rcpts']}; Received: ... {received[-1].strip()}")
    for env in environments():
        print(f"  qmail-queue ran with SMTPAUTHUSER={env.get('SMTPAUTHUSER')}")
    d.show_log(srv)
