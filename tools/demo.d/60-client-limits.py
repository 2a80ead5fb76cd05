"""client limits (Postfix anvil's): default conn=2 inrcpt=3/1h; two sessions at once from 127.0.0.1 are greeted, a third gets 421 and a place is free the moment one ends; inbound mail over inrcpt= gets 450 per recipient; qmail-throttlectl shows the connections in use and the rate's counter."""

import qmail_harness as qh


def greet(d, srv, held):
    s = qh.Session(srv.connect())
    held.append(s)
    d.show(f"S{len(held)}", s.reply())
    return s


def demo(d):
    d.limits_table("default conn=2 inrcpt=3/1h\n")
    srv = d.smtpd()
    held = []
    try:
        print("  three sessions at once from 127.0.0.1 (S1, S2, S3):")
        for _ in range(3):
            greet(d, srv, held)
        d.throttlectl("show", "127.0.0.1")
        print("  S1 quits; as soon as its qmail-smtpd is gone a new session (S4) gets in:")
        d.show("S1", held[0].cmd("QUIT"))
        held[0].rest()
        qh.wait_for(lambda: len(srv.children()) == 1, timeout=30)
        greet(d, srv, held)
    finally:
        for s in held:
            s.close()
    qh.wait_for(lambda: not srv.children(), timeout=30)
    print("  inbound mail (not a relay client): four recipients, inrcpt=3/1h")
    d.session(srv, ["HELO client.example", "MAIL FROM:<a@client.example>",
                    "RCPT TO:<postmaster@test.example>", "RCPT TO:<postmaster@test.example>",
                    "RCPT TO:<postmaster@test.example>", "RCPT TO:<postmaster@test.example>",
                    "DATA", b"Subject: demo\r\n\r\ninbound\r\n.\r\n", "QUIT"])
    d.throttlectl("show", "127.0.0.1")
    d.show_log(srv)
    d.drop_limits_table()
