"""Big remote concurrency, end to end: real qmail-send, qmail-rspawn and
qmail-remote deliver a queue to an SMTP sink that holds every session open,
until at least 1500 sessions are open at once. qmail-rspawn then holds more
than 3000 pipe descriptors, far past select()'s stock limit of 1024, and
every delivery must arrive exactly once. The same runs with the delivering
programs built with -D_FORTIFY_SOURCE=2, where glibc's own FD_SET aborts at
descriptor 1024."""

import collections
import os
import resource

import pytest

import qmail_harness as qh

MESSAGES = 400
RCPTS = 4  # per message: qmail-send makes one delivery of each
TOTAL = MESSAGES * RCPTS
TARGET = 1500  # sessions open at once
CONCURRENCY = 1700
HOLD = 300  # the test releases the sessions; this only bounds a failure


def rcpt(i: int, k: int) -> str:
    return f"u{i}-{k}@r{k}.example"


def queue_all():
    qh.queue_messages(
        ("sender@test.example", [rcpt(i, k) for k in range(RCPTS)],
         f"From: sender@test.example\nSubject: big {i}\nX-Sink-Id: m{i}\n\nbody {i}\n".encode())
        for i in range(MESSAGES))


@pytest.mark.parametrize("build", ["patched", "fortify"])
def test_1500_remote_sessions_at_once_each_delivery_exactly_once(qmail, build):
    qh.need_descriptors(2 * CONCURRENCY + 5)  # qmail-rspawn: two a delivery and five
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    spawn = int((qh.TREE / "conf-spawn").read_text().split()[0])
    if spawn < CONCURRENCY:
        pytest.fail(f"conf-spawn {spawn} is below the {CONCURRENCY} deliveries at once this test needs")
    bindir = qh.FORTIFY if build == "fortify" else qmail.home / "bin"
    if build == "fortify":
        assert "-D_FORTIFY_SOURCE=2" in (qh.FORTIFY / "conf-cc").read_text().splitlines()[0]
    qmail.control.write("concurrencyremote", f"{CONCURRENCY}\n")
    sink = qmail.sink(hold=HOLD)
    queue_all()
    # a soft descriptor limit of 1024, as on many systems: qmail-rspawn must
    # raise it itself, or deliveries past about 510 could not get a pipe
    send = qmail.send(bindir=bindir, limits={resource.RLIMIT_NOFILE: (1024, hard)})
    rspawn = send.wait_until(lambda: send.pid("qmail-rspawn"), 120, "qmail-rspawn")
    assert os.readlink(f"/proc/{rspawn}/exe") == str(bindir / "qmail-rspawn")

    send.wait_until(lambda: sink.status()["held"] >= TARGET, 300, f"{TARGET} sessions held at once")
    highest_fd = qh.max_fd(rspawn)
    sink.hold_nobody()
    send.wait_until(lambda: send.successes() >= TOTAL, 300, "all deliveries")
    send.wait_until(lambda: not qmail.queue.message_files(), 120, "qmail-send to empty the queue")
    send.stop()
    summary = sink.stop()

    log = send.log()
    assert summary["peak"] >= TARGET
    assert highest_fd > 2 * TARGET, "qmail-rspawn should hold two descriptors per delivery"
    got = collections.Counter(sink.deliveries())
    want = collections.Counter((f"m{i}", rcpt(i, k)) for i in range(MESSAGES) for k in range(RCPTS))
    assert got == want, f"missing {list((want - got))[:5]} extra {list((got - want))[:5]}"
    assert send.successes() == TOTAL
    for bad in ("deferral", "failure", "warning", "alert"):
        assert bad not in log, [line for line in log.splitlines() if bad in line][:5]
