"""Client limits at the greeting (conn=, connrate=): CPU per session against no entry and Postfix's anvil.

Many sequential sessions (connect, greeting, EHLO, QUIT, the server closes)
from one client, 127.0.0.1, against:

- "no entry": the patched qmail-smtpd with a table in which no entry carries
  client settings (control/spamt.clients absent): the greeting costs one
  access() and nothing else.
- "conn+connrate": the same qmail-smtpd, the client's entry
  `127.0.0.1 conn=50 connrate=10000000/1h` (far above the load): a table
  lookup, a slot lock in throttle/conn/ and a connrate charge in the LMDB
  store at every greeting.
- stock netqmail-1.06 qmail-smtpd, for reference.
- Postfix's smtpd with the same anvil limits
  (smtpd_client_connection_count_limit=50, smtpd_client_connection_rate_limit=
  10000000, anvil_rate_time_unit=3600s), and without (both 0: smtpd does not
  talk to anvil). smtpd_peername_lookup=no, as tcpserver -H.

qmail's CPU is tcpserver's and every qmail-smtpd's (all reaped); Postfix's
is every process of its instance (master, smtpd, anvil, postlogd writing its
log lines, ...), live and reaped, read before and after each round. The
variants take turns within each round, in an order that rotates; figures are
medians of the rounds, and of the per-round ratios, which a machine shared
with other work disturbs least.
"""

import shutil
import socket
import subprocess

import benchlib
import qmail_harness as qh

ROUNDS = 5
SESSIONS = 1000
LIMITS = "conn=50 connrate=10000000/1h"
# both tables limit someone else's relaying: only the client entry differs
NO_ENTRY = "10.0.0.0/8 rcpt=100/1h\n"
WITH_ENTRY = NO_ENTRY + f"127.0.0.1 {LIMITS}\n"
ANVIL = {"smtpd_client_connection_count_limit": "50", "smtpd_client_connection_rate_limit": "10000000",
         "anvil_rate_time_unit": "3600s"}
NO_ANVIL = {"smtpd_client_connection_count_limit": "0", "smtpd_client_connection_rate_limit": "0"}


def sessions(port: int, n: int) -> None:
    """n sessions one after the other; anything but 220, 250, 221 is an error."""
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            s = qh.Session(sock)
            replies = [s.reply(), s.cmd("EHLO client.example"), s.cmd("QUIT")]
            if not all(r.startswith(code) for r, code in zip(replies, (b"220 ", b"250", b"221 "))):
                raise RuntimeError(f"session refused: {replies}")
            s.rest()


def qmail_us(ctx, smtpd, table: str | None) -> float:
    """CPU us per session of tcpserver and qmail-smtpd; table: compiled first."""
    if table is not None:
        benchlib.compile_table(ctx, table)
        flag = (qh.HOME / "control/spamt.clients").exists()
        if flag != ("conn=" in table):
            raise RuntimeError(f"control/spamt.clients {'present' if flag else 'absent'} for table {table!r}")
    srv = ctx.server(smtpd, concurrency=20)
    sessions(srv.port, SESSIONS)
    log = srv.log()
    cpu = srv.finish()
    if "throttle" in log:
        raise RuntimeError(f"unexpected throttle log lines: {log[:300]}")
    return cpu / SESSIONS * 1e6


def postfix_us(peer: benchlib.PostfixPeer) -> float:
    before = peer.cpu_seconds()
    sessions(peer.port, SESSIONS)
    return (peer.cpu_seconds() - before) / SESSIONS * 1e6


def run(ctx):
    qh.reset_throttle()
    peers = {}
    try:
        for name, limits in (("postfix", NO_ANVIL), ("postfix+anvil", ANVIL)):
            base = ctx.dir / f"postfix-client-{name.replace('+', '-')}"
            shutil.rmtree(base, ignore_errors=True)
            peers[name] = benchlib.PostfixPeer(base, benchlib.free_port(),
                                               {"smtpd_peername_lookup": "no", **limits}).start()
            sessions(peers[name].port, 100)  # warm up
        variants = {
            "stock": lambda: qmail_us(ctx, qh.STOCK_SMTPD, None),
            "no entry": lambda: qmail_us(ctx, qh.PATCHED_SMTPD, NO_ENTRY),
            "conn+connrate": lambda: qmail_us(ctx, qh.PATCHED_SMTPD, WITH_ENTRY),
            "postfix": lambda: postfix_us(peers["postfix"]),
            "postfix+anvil": lambda: postfix_us(peers["postfix+anvil"]),
        }
        names = list(variants)
        got = {name: [] for name in names}
        for rnd in range(ROUNDS):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for name in order:
                got[name].append(variants[name]())
            print(f"  round {rnd + 1}: " + ", ".join(f"{n} {got[n][-1]:.0f}" for n in names)
                  + " us CPU/session", flush=True)
    finally:
        for peer in peers.values():
            peer.stop()
    used = subprocess.run([str(qh.HOME / "bin/qmail-throttlectl"), "-d", str(qh.HOME), "show", "127.0.0.1"],
                          capture_output=True, text=True).stdout
    print("  " + used.strip().replace("\n", "\n  "), flush=True)
    qh.reset_throttle()
    med = {name: benchlib.median(v) for name, v in got.items()}

    def per_round(a: str, b: str) -> float:
        return benchlib.median([y / x for x, y in zip(got[a], got[b])])

    print("  medians: " + ", ".join(f"{n} {med[n]:.0f} us" for n in names), flush=True)
    return [
        ("CPU us/session: no entry vs conn+connrate", med["no entry"], med["conn+connrate"],
         med["conn+connrate"] / med["no entry"]),
        ("  same, median of per-round ratios", "-", "-", per_round("no entry", "conn+connrate")),
        ("CPU us/session: stock vs no entry", med["stock"], med["no entry"], med["no entry"] / med["stock"]),
        ("CPU us/session: Postfix+anvil vs conn+connrate", med["postfix+anvil"], med["conn+connrate"],
         med["conn+connrate"] / med["postfix+anvil"]),
        ("  same, median of per-round ratios", "-", "-", per_round("postfix+anvil", "conn+connrate")),
        ("CPU us/session: Postfix no limits vs anvil", med["postfix"], med["postfix+anvil"],
         med["postfix+anvil"] / med["postfix"]),
    ]
