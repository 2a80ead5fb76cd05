"""relay limits: a relay client with 3 recipients an hour; the limit, RSET giving recipients back, a queued message keeping them, and qmail-throttlectl showing and resetting the budget."""

import subprocess

import qmail_harness as qh


def run(*args):
    r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=30)
    print(f"  $ {' '.join(str(a) for a in args[:1] and [args[0].name, *args[1:]])}    (exit {r.returncode})")
    for line in (r.stdout + r.stderr).splitlines():
        print(f"    {line}")
    return r


def demo(d):
    qh.reset_throttle()
    d.control.write("spamt", "default rcpt=3/1h action=451\n192.0.2.0/24 exempt\n")
    print("  control/spamt: default rcpt=3/1h action=451; 192.0.2.0/24 exempt")
    run(qh.HOME / "bin/qmail-newspamt", "-d", qh.HOME)
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
    ctl = qh.HOME / "bin/qmail-throttlectl"
    run(ctl, "-d", qh.HOME, "show", "127.0.0.1")
    run(ctl, "-d", qh.HOME, "top")
    run(ctl, "-d", qh.HOME, "reset", "127.0.0.1")
    run(ctl, "-d", qh.HOME, "show", "127.0.0.1")
    d.show_log(srv)
    for name in ("spamt", "spamt.cdb"):
        d.control.remove(name)
    qh.reset_throttle()
