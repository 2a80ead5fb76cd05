"""STARTTLS/AUTH configured: CPU per plain session against stock, and TLS sessions per second.

1. Plain sessions (one message per connection, Postfix's smtp-source, queue
   stand-in) against stock netqmail-1.06 and against the patched qmail-smtpd
   with TLS and AUTH fully configured (control/servercert.pem, a checkpassword
   program on the command line, SMTPAUTH) but not used by the client: OpenSSL
   must not be loaded, so the CPU per connection must stay within 10% of
   stock's (target ratio <= 1.1). Stock and patched alternate, several rounds.
2. STARTTLS sessions (EHLO, STARTTLS, EHLO, MAIL, RCPT, DATA, QUIT) from
   parallel client processes against the patched server only: sessions per
   second and server CPU per TLS session (exec, loading OpenSSL, handshake).
"""

import multiprocessing
import socket
import ssl
import time

import benchlib
import qmail_harness as qh
import tlsauth as ta

ROUNDS = 5
SESSIONS = 20
MESSAGES = 2000
TLS_CLIENTS = 4
TLS_SESSIONS = 600

MESSAGE = b"Subject: bench\r\n\r\n" + b"x" * 1000 + b"\r\n.\r\n"


def tls_sessions(port: int, count: int, cafile: str) -> int:
    ctx = ssl.create_default_context(cafile=cafile)
    done = 0
    for _ in range(count):
        s = qh.Session(socket.create_connection(("127.0.0.1", port), timeout=30))
        s.reply()
        s.cmd("EHLO client.example")
        if not s.cmd("STARTTLS").startswith(b"220 "):
            raise RuntimeError("STARTTLS refused")
        t = qh.Session(ctx.wrap_socket(s.sock, server_hostname=ta.HOSTNAME))
        t.cmd("EHLO client.example")
        t.cmd("MAIL FROM:<bench@client.example>")
        t.cmd("RCPT TO:<u@test.example>")
        t.cmd("DATA")
        t.send(MESSAGE)
        if t.reply().startswith(b"250 "):
            done += 1
        t.cmd("QUIT")
        t.close()
    return done


def run(ctx):
    sink = {"QMAILQUEUE": str(ctx.sink)}
    ta.install_cert(ctx.control)
    configured = dict(sink, SMTPAUTH="")
    results = {"stock": [], "patched": []}
    for rnd in range(ROUNDS):
        for label, smtpd, env, args in (("stock", qh.STOCK_SMTPD, sink, []),
                                        ("patched", qh.PATCHED_SMTPD, configured, ta.auth_args())):
            srv = ctx.server(smtpd, env=env, args=args, concurrency=SESSIONS + 10)
            wall = benchlib.smtp_source(srv.port, SESSIONS, MESSAGES)
            cpu = srv.finish()
            results[label].append(cpu / MESSAGES * 1e6)
            print(f"  round {rnd + 1} {label:8} plain {MESSAGES / wall:8.0f} msg/s "
                  f"{cpu / MESSAGES * 1e6:7.0f} us CPU/connection", flush=True)
    s_cpu = benchlib.median(results["stock"])
    p_cpu = benchlib.median(results["patched"])

    srv = ctx.server(qh.PATCHED_SMTPD, env=sink, args=ta.auth_args(), concurrency=TLS_CLIENTS + 10)
    per_client = TLS_SESSIONS // TLS_CLIENTS
    t0 = time.monotonic()
    # forked clients (this module is loaded from a path, so nothing is pickled)
    mp = multiprocessing.get_context("fork")
    counts = mp.Queue()
    clients = [mp.Process(target=lambda: counts.put(tls_sessions(srv.port, per_client, str(ta.certificate()[1]))))
               for _ in range(TLS_CLIENTS)]
    for c in clients:
        c.start()
    done = sum(counts.get(timeout=600) for _ in clients)
    for c in clients:
        c.join(timeout=60)
    wall = time.monotonic() - t0
    cpu = srv.finish()
    if done != per_client * TLS_CLIENTS:
        raise RuntimeError(f"only {done} of {per_client * TLS_CLIENTS} TLS sessions delivered")
    print(f"  patched STARTTLS {done / wall:8.1f} sessions/s {cpu / done * 1e3:7.2f} ms server CPU/session",
          flush=True)
    return [
        ("plain session CPU us, TLS+AUTH configured", s_cpu, p_cpu, p_cpu / s_cpu),
        ("STARTTLS sessions/s (patched only)", "-", done / wall, "-"),
        ("server CPU ms per STARTTLS session", "-", cpu / done * 1e3, "-"),
    ]
