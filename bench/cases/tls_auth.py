"""STARTTLS/AUTH configured: CPU per plain session against stock, and TLS sessions per second.

1. Plain sessions (one message per connection, Postfix's smtp-source, queue
   stand-in) against stock netqmail-1.06 and against the patched qmail-smtpd
   with TLS and AUTH fully configured (control/servercert.pem, a checkpassword
   program on the command line, SMTPAUTH) but not used by the client: OpenSSL
   must not be loaded, so the CPU per connection must stay within 10% of
   stock's (target ratio <= 1.1). Stock and patched alternate within each
   round (who goes first alternates too); reported are the medians of each
   side and the median of the per-round ratios, which a machine shared with
   other work disturbs least.
   The same comparison with qmail-smtpd alone, exec'd one at a time on a
   canned session (no tcpserver, no network), which is less noisy.
2. STARTTLS sessions (EHLO, STARTTLS, EHLO, MAIL, RCPT, DATA, QUIT) from
   parallel client processes against the patched server only: sessions per
   second and server CPU per TLS session (exec, loading OpenSSL, handshake).
"""

import os
import resource
import shlex
import shutil
import subprocess

import benchlib
import qmail_harness as qh
import tlsauth as ta

ROUNDS = 9
SESSIONS = 20
MESSAGES = 1500
TLS_CLIENTS = 4
TLS_SESSIONS = 600

MESSAGE = b"Subject: bench\r\n\r\n" + b"x" * 1000 + b"\r\n.\r\n"
EXECS = 1000
SESSION = (b"EHLO client.example\r\nMAIL FROM:<bench@client.example>\r\nRCPT TO:<u@test.example>\r\n"
           b"DATA\r\n" + MESSAGE + b"QUIT\r\n")


def exec_cpu_us(argv: list[str], env: dict, session_file: str) -> float:
    """CPU (user+system) per run of qmail-smtpd on a canned session read
    from a file, output to /dev/null: no tcpserver, no network, one at a time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(EXECS):
        with open(session_file, "rb") as stdin, open(os.devnull, "wb") as out:
            pid = os.posix_spawn(argv[0], argv, env, file_actions=[
                (os.POSIX_SPAWN_DUP2, stdin.fileno(), 0), (os.POSIX_SPAWN_DUP2, out.fileno(), 1)])
        os.waitpid(pid, 0)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / EXECS * 1e6


def perf_instructions(argv: list[str], env: dict, session_file: str, runs: int = 300) -> float | None:
    """User+kernel instructions per exec (perf stat, averaged over runs),
    less those of the same shell wrapper around /bin/true. None without perf."""
    if shutil.which("perf") is None:
        return None

    def count(cmd: list[str]) -> float | None:
        shell = f"exec {shlex.join(cmd)} < {shlex.quote(session_file)} > /dev/null"
        r = subprocess.run(["perf", "stat", "-x", ",", "-r", str(runs), "-e", "instructions:u,instructions:k",
                            "sh", "-c", shell], env=env, capture_output=True, text=True, timeout=600)
        values = [line.split(",")[0] for line in r.stderr.splitlines() if "instructions" in line]
        if len(values) != 2 or not all(v.replace(".", "").isdigit() for v in values):
            return None
        return float(values[0]) + float(values[1])

    total, baseline = count(argv), count(["/bin/true"])
    return None if total is None or baseline is None else total - baseline


def run(ctx):
    sink = {"QMAILQUEUE": str(ctx.sink)}
    ta.install_cert(ctx.control)
    configured = dict(sink, SMTPAUTH="")
    variants = {"stock": (qh.STOCK_SMTPD, sink, []), "patched": (qh.PATCHED_SMTPD, configured, ta.auth_args())}
    results = {"stock": [], "patched": []}
    ratios = []
    for rnd in range(ROUNDS):
        # alternate who goes first, so that a load change on the machine
        # does not always hit the same side; compare within each round
        for label in benchlib.taking_turns(rnd, "stock", "patched"):
            smtpd, env, args = variants[label]
            srv = ctx.server(smtpd, env=env, args=args, concurrency=SESSIONS + 10)
            wall = benchlib.smtp_source(srv.port, SESSIONS, MESSAGES)
            cpu = srv.finish()
            results[label].append(cpu / MESSAGES * 1e6)
            print(f"  round {rnd + 1} {label:8} plain {MESSAGES / wall:8.0f} msg/s "
                  f"{cpu / MESSAGES * 1e6:7.0f} us CPU/connection", flush=True)
        ratios.append(results["patched"][-1] / results["stock"][-1])
    s_cpu = benchlib.median(results["stock"])
    p_cpu = benchlib.median(results["patched"])

    # the same without tcpserver and the network: qmail-smtpd alone, exec'd
    # on a canned session (as root, like tcpserver before it drops to qmaild)
    session_file = ctx.dir / "plain-session.txt"
    session_file.write_bytes(SESSION)
    base_env = {"PATH": "/usr/bin:/bin", "TCPREMOTEIP": "127.0.0.1", "TCPLOCALIP": "127.0.0.1", **sink}
    alone = {"stock": [], "patched": []}
    for rnd in range(ROUNDS):
        for label in benchlib.taking_turns(rnd, "stock", "patched"):
            smtpd, env, args = variants[label]
            alone[label].append(exec_cpu_us([str(smtpd), *args], {**base_env, **env}, str(session_file)))
    a_ratios = [p / s for s, p in zip(alone["stock"], alone["patched"])]
    s_alone = benchlib.median(alone["stock"])
    p_alone = benchlib.median(alone["patched"])
    print(f"  qmail-smtpd alone, canned session: stock {s_alone:.0f} us, patched {p_alone:.0f} us CPU/exec", flush=True)
    # instructions are steadier than CPU time on a shared machine
    instructions = {label: perf_instructions([str(smtpd), *args], {**base_env, **env}, str(session_file))
                    for label, (smtpd, env, args) in variants.items()}

    srv = ctx.server(qh.PATCHED_SMTPD, env=sink, args=ta.auth_args(), concurrency=TLS_CLIENTS + 10)
    per_client = TLS_SESSIONS // TLS_CLIENTS
    done, wall = benchlib.parallel_clients(lambda n: benchlib.starttls_messages(srv, n, str(ta.certificate()[1])),
                                           TLS_CLIENTS, per_client)
    cpu = srv.finish()
    if done != per_client * TLS_CLIENTS:
        raise RuntimeError(f"only {done} of {per_client * TLS_CLIENTS} TLS sessions delivered")
    print(f"  patched STARTTLS {done / wall:8.1f} sessions/s {cpu / done * 1e3:7.2f} ms server CPU/session",
          flush=True)
    return [
        ("plain session CPU us, TLS+AUTH configured", s_cpu, p_cpu, p_cpu / s_cpu),
        ("  same, median of per-round ratios", "-", "-", benchlib.median(ratios)),
        ("qmail-smtpd alone CPU us/exec, canned session", s_alone, p_alone, p_alone / s_alone),
        ("  same, median of per-round ratios", "-", "-", benchlib.median(a_ratios)),
        *([("qmail-smtpd alone, instructions/exec (perf)", instructions["stock"], instructions["patched"],
            instructions["patched"] / instructions["stock"])] if None not in instructions.values() else []),
        ("STARTTLS sessions/s (patched only)", "-", done / wall, "-"),
        ("server CPU ms per STARTTLS session", "-", cpu / done * 1e3, "-"),
    ]
