"""qmail-smtpd, no throttling configured: messages/second and CPU per connection.

Postfix's smtp-source opens many parallel sessions against stock and patched
qmail-smtpd under tcpserver on loopback, one message per connection, and the
two are run alternately several times in one run (who goes first alternates).
The queue is a stand-in (bench/queue-sink) so that the disk does not drown the
difference.
"""

import benchlib
import qmail_harness as qh

ROUNDS = 9
SESSIONS = 20
MESSAGES = 2000


def run(ctx):
    env = {"QMAILQUEUE": str(ctx.sink)}
    results = {"stock": [], "patched": []}
    for rnd in range(ROUNDS):
        for label, smtpd in benchlib.stock_and_patched(rnd):
            srv = ctx.server(smtpd, env=env, concurrency=SESSIONS + 10)
            wall = benchlib.smtp_source(srv.port, SESSIONS, MESSAGES)
            cpu = srv.finish()
            results[label].append((MESSAGES / wall, cpu / MESSAGES * 1e6))
            print(f"  round {rnd + 1} {label:8} {MESSAGES / wall:8.0f} msg/s "
                  f"{cpu / MESSAGES * 1e6:7.0f} us CPU/connection", flush=True)
    s_rate = benchlib.median([r[0] for r in results["stock"]])
    p_rate = benchlib.median([r[0] for r in results["patched"]])
    s_cpu = benchlib.median([r[1] for r in results["stock"]])
    p_cpu = benchlib.median([r[1] for r in results["patched"]])
    # the machine's noise moves whole rounds: compare each round's pair too
    pair = benchlib.median([p[0] / s[0] for s, p in zip(results["stock"], results["patched"])])
    return [
        ("messages/s (median of rounds)", s_rate, p_rate, p_rate / s_rate),
        ("  same, median of per-round ratios", "-", "-", pair),
        ("CPU us per connection (median)", s_cpu, p_cpu, p_cpu / s_cpu),
    ]
