"""Submission with relay limits on against the same qmail-smtpd without them: server CPU per TLS+AUTH session.

Stock netqmail-1.06 has neither STARTTLS nor AUTH, so this case compares
qmail-throttle's qmail-smtpd with itself: a submission server (port 587
style) where every session is STARTTLS, AUTH PLAIN, one message to two
relayed recipients, QUIT - with a limits table that limits every user
(default rcpt=... msg=... per hour and per day, far above the load: two
atomic check-and-charge steps per message, the store opened by every
connection), and without one. Parallel client processes; the server's
whole CPU (tcpserver, every qmail-smtpd, checkpassword and queue stand-in)
per session, alternating which variant goes first in each round.
checkpassword is bench/checkpassword-accept (C, accepts anything), so that
a password database does not hide the difference; a real one costs more.
It shows what relay limits cost where they are used, next to TLS: not
the target ratio against stock, which relay_throughput measures.
"""

import base64
import subprocess

import benchlib
import qmail_harness as qh
import tlsauth as ta

ROUNDS = 6
CLIENTS = 4
SESSIONS = 400
RCPTS = ("r1@far.example", "r2@far.example")
PLAIN = base64.b64encode(b"\0alice@example.com\0any password").decode()


def one_round(ctx, checkpassword, limits: bool) -> float:
    """Server CPU ms per session. (Sessions per second say little here: the
    Python clients, not the server, set the pace.)"""
    if limits:
        ctx.control.write("spamt", "default rcpt=10000000/1h,100000000/1d msg=10000000/1h,100000000/1d\n")
        subprocess.run([str(qh.HOME / "bin/qmail-newspamt"), "-d", str(qh.HOME)], check=True)
    else:
        ctx.control.remove("spamt")
        ctx.control.remove("spamt.cdb")
    srv = ctx.server(qh.PATCHED_SMTPD, env={"QMAILQUEUE": str(ctx.sink), "SMTPAUTH": ""},
                     args=[str(checkpassword), "/bin/true"], concurrency=CLIENTS + 10)
    per_client = SESSIONS // CLIENTS
    cafile = str(ta.certificate()[1])

    def session_loop(n: int) -> int:
        return benchlib.starttls_messages(srv, n, cafile, sender="alice@example.com", rcpts=RCPTS,
                                          auth_plain=PLAIN)

    done, _ = benchlib.parallel_clients(session_loop, CLIENTS, per_client)
    cpu = srv.finish()
    if done != per_client * CLIENTS:
        raise RuntimeError(f"only {done} of {per_client * CLIENTS} submissions delivered")
    if "throttle" in srv.log():
        raise RuntimeError(f"unexpected throttle log lines: {srv.log()[:300]}")
    return cpu / done * 1e3


def run(ctx):
    checkpassword = ctx.dir / "checkpassword-accept"
    subprocess.run(["gcc", "-O2", "-o", str(checkpassword), str(ctx.top / "bench/checkpassword-accept.c")], check=True)
    ta.install_cert(ctx.control)
    qh.reset_throttle()
    results = {"off": [], "on": []}
    for rnd in range(ROUNDS):
        for label in benchlib.taking_turns(rnd, "off", "on"):
            cpu_ms = one_round(ctx, checkpassword, label == "on")
            results[label].append(cpu_ms)
            print(f"  round {rnd + 1} limits {label:3} {cpu_ms:6.2f} ms server CPU/session",
                  flush=True)
    used = subprocess.run([str(qh.HOME / "bin/qmail-throttlectl"), "-d", str(qh.HOME), "show", "alice@example.com"],
                          capture_output=True, text=True).stdout
    print("  " + used.strip().replace("\n", "\n  "), flush=True)
    qh.reset_throttle()
    off_cpu = benchlib.median(results["off"])
    on_cpu = benchlib.median(results["on"])
    ratios = [on / off for off, on in zip(results["off"], results["on"])]
    return [
        ("server CPU ms/submission: limits off vs on", off_cpu, on_cpu, on_cpu / off_cpu),
        ("  same, median of per-round ratios", "-", "-", benchlib.median(ratios)),
    ]
