"""One relay-limit decision: LMDB store against a per-RCPT checker script.

qmail-throttle decides in qmail-smtpd itself: one atomic check-and-charge of
three counters (user, domain, client address) in the LMDB store. The stock
column is the approach it replaces, qmail-smtpd's rcptcheck patch running a
shell checker per RCPT (bench/rcptcheck-overlimit-like: sh + grep/tail/sed/
wc, a file that grows by a byte per recipient), fork/exec/wait like
qmail-smtpd does. Times per decision, from bench/throttle-bench. The store is
in the bench directory of the throwaway installation (make's TEST_DIR), kept
without fsync, as qmail-smtpd keeps it; one extra row shows what a disk flush
per decision would cost (fdatasync after each, the reason it has none).
"""

import os
import pwd
import re
import shutil
import subprocess

DECISIONS = 20000
SCRIPT_RUNS = 300
PROCS = 8
OPENS = 200


def parse(line: str) -> dict:
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)}


def run_bench(ctx, *args) -> dict:
    exe = ctx.bench_bin
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"throttle-bench {args}: {r.stderr.strip()}")
    print("  " + r.stdout.strip(), flush=True)
    return parse(r.stdout)


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    return path


def run(ctx):
    base = ctx.dir / "relay-decision"
    script = ctx.top / "bench/rcptcheck-overlimit-like"
    sdir = fresh(base / "script")
    (sdir / "limits").write_text("bob@example.com:100\nalice@example.com:1000000000\ndefault:1000\n")
    stock = run_bench(ctx, "script", script, SCRIPT_RUNS, sdir)
    one = run_bench(ctx, "lmdb", fresh(base / "lmdb-1"), DECISIONS, 1)
    # opened as qmail-smtpd opens it: by the store's owner, not root
    qmaild = pwd.getpwnam("qmaild")
    for p in [base / "lmdb-1", *(base / "lmdb-1").rglob("*")]:
        os.chown(p, qmaild.pw_uid, qmaild.pw_gid)
    opening = run_bench(ctx, "open", base / "lmdb-1", OPENS)
    many = run_bench(ctx, "lmdb", fresh(base / "lmdb-8"), DECISIONS // 4, PROCS)
    synced = run_bench(ctx, "lmdb", fresh(base / "lmdb-sync"), 300, 1, "sync")
    shutil.rmtree(base, ignore_errors=True)
    s_med, s_p99 = stock["median_us"], stock["p99_us"]
    return [
        ("decision median us (1 process)", s_med, one["median_us"], one["median_us"] / s_med),
        ("decision p99 us (1 process)", s_p99, one["p99_us"], one["p99_us"] / s_p99),
        (f"decision median us ({PROCS} processes at once)", "-", many["median_us"], "-"),
        (f"decision p99 us ({PROCS} processes at once)", "-", many["p99_us"], "-"),
        (f"decisions/s ({PROCS} processes, 2 cores)", "-", many["decisions_per_s"], "-"),
        ("open store us (new process)", "-", opening["open_median_us"], "-"),
        ("first decision us after opening", "-", opening["first_decision_median_us"], "-"),
        ("decision median us, fdatasync per decision", "-", synced["median_us"], "-"),
    ]
