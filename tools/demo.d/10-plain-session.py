"""a plain SMTP session: with no throttling configured, qmail-smtpd is stock."""


def demo(d):
    d.control.write("rcpthosts", "test.example\n")
    srv = d.smtpd(env={"RELAYCLIENT": ""})
    d.session(srv, [
        "EHLO client.example",
        "MAIL FROM:<alice@client.example>",
        "RCPT TO:<bob@test.example>",
        "RCPT TO:<carol@elsewhere.example>",
        "DATA",
        b"Subject: demo\r\n\r\nhello\r\n.\r\n",
        "QUIT",
    ])
    print(f"  queued: {len(d.queue.messages())} message(s)")
    d.show_log(srv)
