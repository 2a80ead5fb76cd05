"""the limits table: control/spamt (+ a spamthrottle line and control/relaylimits) compiled by qmail-newspamt, then explained."""

import subprocess

import qmail_harness as qh

SPAMT = """\
# everybody else: 1000 relayed recipients a day, 5 failed AUTH per 10 minutes, a
# teergrube, and (Postfix anvil's limits) 50 sessions at once, 100 new a minute
default            rcpt=1000/1d authfail=5/10m st=1500 stmax=120000 conn=50 connrate=100/1m
# a customer domain: one budget shared by all its users
@example.com       rcpt=5000/1d
alice@example.com  rcpt=100/1h,1000/1d action=421
# the office is never limited
192.0.2.0/24       exempt
# a noisy block: every client its own budget, and a teergrube
198.51.100.0/24    rcpt=300/1h each st=2000 tg=10 tgtext="please wait: we are busy"
2001:db8::/32      msg=50/1h
# a line from an old spamthrottle control/spamt, unchanged
203.0.113.0/24:abuse:5000:::1:2:hold your horses!:
"""

RELAYLIMITS = """\
# rcptcheck-overlimit's file, unchanged: a day's recipients, 421 when over
bob@example.com:50
"""


def newspamt(*args):
    r = subprocess.run([str(qh.HOME / "bin/qmail-newspamt"), *args], capture_output=True, text=True, timeout=30)
    print(f"  $ qmail-newspamt {' '.join(args)}".rstrip() + f"    (exit {r.returncode})")
    for line in (r.stdout + r.stderr).splitlines():
        print(f"    {line}")
    return r


def demo(d):
    for name in ("spamt", "relaylimits", "spamt.cdb"):
        d.control.remove(name)
    d.control.write("spamt", SPAMT)
    d.control.write("relaylimits", RELAYLIMITS)
    print("  control/spamt:")
    for line in SPAMT.splitlines():
        print(f"    {line}")
    print("  control/relaylimits:")
    for line in RELAYLIMITS.splitlines():
        print(f"    {line}")

    newspamt()
    dump = subprocess.run(["cdb", "-d", str(d.control.path("spamt.cdb"))], capture_output=True, timeout=30).stdout
    print("  $ cdb -d control/spamt.cdb | head -1    (tinycdb reads the table)")
    first = dump.split(b"\n", 1)[0].decode()
    print(f"    {first}")

    print("\n  why is alice limited when she sends from 198.51.100.9?")
    newspamt("-x", "198.51.100.9", "alice@example.com")
    print("\n  and an IPv6 client of 2001:db8::/32 that did not authenticate?")
    newspamt("-x", "2001:db8:1:2::3")

    print("\n  and a client of the block from the spamthrottle line?")
    newspamt("-x", "203.0.113.5")

    print("\n  a mistake is reported by line, and the table in use is kept:")
    d.control.write("spamt", SPAMT + "192.0.2.7/24 rcpt=10\nbob@example.com rcpt=5/1h\n")
    newspamt()
    for name in ("spamt", "relaylimits", "spamt.cdb"):
        d.control.remove(name)
