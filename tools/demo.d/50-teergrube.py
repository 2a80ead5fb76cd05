"""teergrube: a client of 127.0.0.0/8 with st=1000 stmax=3000 tg=1 flush=yes; the first message goes through, the next one waits 3 s for its 354 with continuation lines, EHLO without PIPELINING; qmail-throttlectl shows the client's state and releases it."""

import subprocess
import time

import qmail_harness as qh


def demo(d):
    qh.reset_throttle()
    d.control.write("spamt", '127.0.0.0/8 st=1000 stmax=3000 tg=1 tgtext="slow down, please" flush=yes\n')
    print('  control/spamt: 127.0.0.0/8 st=1000 stmax=3000 tg=1 tgtext="slow down, please" flush=yes')
    subprocess.run([str(qh.HOME / "bin/qmail-newspamt"), "-d", str(qh.HOME)], check=True)
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
    ctl = qh.HOME / "bin/qmail-throttlectl"
    for args in (("show", "127.0.0.1"), ("reset", "127.0.0.1")):
        r = subprocess.run([str(ctl), "-d", str(qh.HOME), *args], capture_output=True, text=True, check=True)
        print(f"  $ qmail-throttlectl {' '.join(args)}")
        for line in r.stdout.splitlines():
            print(f"    {line}")
    for name in ("spamt", "spamt.cdb"):
        d.control.remove(name)
    qh.reset_throttle()
