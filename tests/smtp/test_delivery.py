"""The harness end to end: qmail-smtpd -> qmail-queue -> qmail-send ->
qmail-lspawn -> qmail-local into a Maildir, all real programs."""

import smtplib

import qmail_harness as qh


def test_message_is_delivered_to_a_local_maildir(qmail):
    maildir = qh.local_maildir()
    send = qmail.send()
    srv = qmail.smtpd()
    with smtplib.SMTP("127.0.0.1", srv.port, local_hostname="client.example", timeout=60) as c:
        c.sendmail("alice@client.example", ["bob@test.example"],
                   b"Subject: delivery test\r\n\r\nhello maildir\r\n")
    delivered = qh.wait_for(lambda: list((maildir / "new").iterdir()))
    assert len(delivered) == 1, send.log()
    text = delivered[0].read_bytes()
    assert b"hello maildir" in text
    assert b"Delivered-To: bob@test.example" in text
    # qmail-send logs the success after qmail-local has put the file in place
    send.wait_until(lambda: "delivery 1: success" in send.log(), 120, "the delivery's success")
