"""teergrube: a client of 127.0.0.0/8 with st=1000 stmax=3000 tg=1 flush=yes; the first message goes through, the next one waits 3 s for its 354 with continuation lines, EHLO without PIPELINING; qmail-throttlectl shows the client's state and releases it."""

import time


def demo(d):
    d.limits_table('127.0.0.0/8 st=1000 stmax=3000 tg=1 tgtext="slow down, please" flush=yes\n')
    srv = d.smtpd()
    t0 = time.monotonic()
    script = ["EHLO client.example"]
    for n in (1, 2):
        script += ["MAIL FROM:<a@client.example>", "RCPT TO:<postmaster@test.example>", "DATA",
                   f"Subject: message {n}\r\n\r\nhello\r\n.".encode() + b"\r\n"]
    script += ["QUIT"]
    d.session(srv, script)
    print(f"  (the session took {time.monotonic() - t0:.1f} s)")
    d.show_log(srv)
    d.throttlectl("show", "127.0.0.1")
    d.throttlectl("reset", "127.0.0.1")
    d.drop_limits_table()
