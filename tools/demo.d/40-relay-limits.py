"""relay limits: a relay client with 3 recipients an hour; the limit, RSET giving recipients back, a queued message keeping them, and qmail-throttlectl showing and resetting the budget."""


def demo(d):
    d.limits_table("default rcpt=3/1h action=451\n192.0.2.0/24 exempt\n")
    srv = d.smtpd(env={"RELAYCLIENT": ""})
    print("  qmail-smtpd with RELAYCLIENT set (a relay client from 127.0.0.1)")
    d.session(srv, ["HELO client.example", "MAIL FROM:<a@client.example>",
                    "RCPT TO:<one@far.example>", "RCPT TO:<two@far.example>",
                    "RCPT TO:<three@far.example>", "RCPT TO:<four@far.example>",
                    "RCPT TO:<postmaster@test.example>",
                    "RSET", "MAIL FROM:<a@client.example>",
                    "RCPT TO:<one@far.example>", "RCPT TO:<two@far.example>", "DATA",
                    b"Subject: demo\r\n\r\nrelayed\r\n.\r\n",
                    "MAIL FROM:<a@client.example>", "RCPT TO:<three@far.example>",
                    "RCPT TO:<four@far.example>", "QUIT"])
    d.throttlectl("show", "127.0.0.1")
    d.throttlectl("top")
    d.throttlectl("reset", "127.0.0.1")
    d.throttlectl("show", "127.0.0.1")
    d.show_log(srv)
    d.drop_limits_table()
