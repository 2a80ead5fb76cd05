"""qmail-rspawn/qmail-lspawn under descriptor and process limits, the
two-byte delivery numbers they speak with qmail-send, and concurrency
changed by HUP: the spawns run what their limits allow instead of failing
deliveries, and qmail-send never uses more slots than it allocated."""

import collections
import grp
import pwd
import resource
import subprocess

import pytest

import qmail_harness as qh

CONF_SPAWN = int((qh.TREE / "conf-spawn").read_text().split()[0])
HOLD = 300  # tests release the sink's sessions themselves


@pytest.fixture(autouse=True)
def big_conf_spawn():
    if CONF_SPAWN < 3000:
        pytest.fail(f"these tests expect conf-spawn 3000 or more; the test tree has {CONF_SPAWN}")


def fd_limited(nofile: int) -> int:
    """What spawn.c may run with nofile descriptors: 2*n+5 <= nofile."""
    return min(CONF_SPAWN, (nofile - 5) // 2)


def two_bytes(n: int) -> bytes:
    return bytes([n & 255, n >> 8])


class Spawn:
    """A spawn run directly, speaking qmail-send's side of the protocol."""

    def __init__(self, program: str, limits: dict, as_qmailr: bool = True, args=()):
        kw = {}
        if as_qmailr:
            kw = {"user": pwd.getpwnam("qmailr").pw_uid, "group": grp.getgrnam("qmail").gr_gid,
                  "extra_groups": []}

        def setlimits():
            for which, pair in limits.items():
                resource.setrlimit(which, pair)

        self.proc = subprocess.Popen([str(qh.HOME / "bin" / program), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, preexec_fn=setlimits, **kw)

    def read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.proc.stdout.read(n - len(out))
            assert chunk, f"spawn closed its output after {out!r}"
            out += chunk
        return out

    def limit(self) -> int:
        b = self.read(2)
        return b[0] + 256 * b[1]

    def command(self, delnum: int, messid: bytes, sender: bytes, rcpt: bytes) -> None:
        self.proc.stdin.write(two_bytes(delnum) + messid + b"\0" + sender + b"\0" + rcpt + b"\0")
        self.proc.stdin.flush()

    def report(self) -> tuple[int, bytes]:
        num = self.read(2)
        text = b""
        while not text.endswith(b"\0"):
            text += self.read(1)
        return num[0] + 256 * num[1], text[:-1]

    def close(self) -> int:
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        return rc


def test_rspawn_announces_what_its_descriptor_limit_allows_in_two_bytes():
    s = Spawn("qmail-rspawn", {resource.RLIMIT_NOFILE: (1000, 1000)})
    assert s.limit() == fd_limited(1000) == 497
    assert s.close() == 0


def test_rspawn_raises_its_soft_descriptor_limit_up_to_the_hard_one():
    qh.need_descriptors(3000)
    s = Spawn("qmail-rspawn", {resource.RLIMIT_NOFILE: (64, 3000)})
    assert s.limit() == fd_limited(3000) == 1497
    limits = open(f"/proc/{s.proc.pid}/limits").read()
    line = next(ln for ln in limits.splitlines() if ln.startswith("Max open files"))
    assert line.split()[3:5] == ["3000", "3000"]
    assert s.close() == 0


def test_rspawn_keeps_within_the_process_limit_of_qmailr():
    # (not lower: every process of qmailr on the machine counts at exec)
    qh.need_descriptors(2 * 2996 + 5)  # else the descriptor limit is the lower one
    s = Spawn("qmail-rspawn", {resource.RLIMIT_NPROC: (3000, 3000)})
    assert s.limit() == 2996  # conf-spawn + 4 processes would be needed
    assert s.close() == 0


def test_lspawn_runs_as_root_so_the_process_limit_does_not_apply():
    s = Spawn("qmail-lspawn", {resource.RLIMIT_NPROC: (300, 300), resource.RLIMIT_NOFILE: (1000, 1000)},
              as_qmailr=False, args=["./Maildir/"])
    assert s.limit() == 497
    assert s.close() == 0


TOO_BIG = b"ZInternal error: delnum too big. (#4.3.5)\n"
NO_MESSAGE = b"Zqmail-spawn unable to open message. (#4.3.0)\n"


@pytest.mark.parametrize("delnum,messid,reply", [
    (40000, b"1/2", TOO_BIG),
    (65535, b"1/2", TOO_BIG),
    (497, b"1/2", TOO_BIG),  # one past the last slot
    (496, b"1/x", b"DInternal error: messid has nonnumerics. (#5.3.5)\n"),
    (256, b"1/99999999", NO_MESSAGE),  # a NUL low byte
    (0, b"1/99999999", NO_MESSAGE),  # two NUL bytes
])
def test_delivery_numbers_come_back_exactly_as_sent(delnum, messid, reply):
    """The classic big-concurrency patch sign-extended the high byte: 40000
    became negative ("delnum negative"). Reports carry the number unsigned,
    and a report ends at the first NUL after its two number bytes."""
    s = Spawn("qmail-rspawn", {resource.RLIMIT_NOFILE: (1000, 1000)})
    assert s.limit() == 497
    s.command(delnum, messid, b"a@b.example", b"c@d.example")
    assert s.report() == (delnum, reply)
    assert s.close() == 0


def queue(n: int, rcpts: int = 4):
    qh.queue_messages(
        ("sender@test.example", [f"u{i}-{k}@r{k}.example" for k in range(rcpts)],
         f"Subject: {i}\nX-Sink-Id: m{i}\n\n{i}\n".encode()) for i in range(n))
    return collections.Counter((f"m{i}", f"u{i}-{k}@r{k}.example") for i in range(n) for k in range(rcpts))


def warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("warning:")]


def test_qmail_send_logs_one_line_and_runs_what_the_descriptor_limit_allows(qmail):
    qmail.control.write("concurrencyremote", "2000\n")
    sink = qmail.sink(hold=HOLD)
    want = queue(150)  # 600 deliveries
    send = qmail.send(limits={resource.RLIMIT_NOFILE: (1000, 1000)})
    send.wait_until(lambda: sink.status()["held"] >= 497, 300, "497 deliveries held")
    # the spawn's table is full: nothing more starts while they are held
    assert send.wait_until(lambda: "remote 497/497" in send.log(), 120, "a full table")
    assert sink.status()["peak_held"] == 497
    sink.hold_nobody()
    send.wait_until(lambda: send.successes() >= 600, 300, "600 deliveries")
    send.stop()
    sink.stop()
    log = send.log()
    assert warnings(log) == [
        f"warning: concurrencyremote 2000 is above the 497 deliveries qmail-rspawn can run "
        f"at once (conf-spawn {CONF_SPAWN}, lowered by its descriptor or process limits); using 497"]
    assert log.splitlines()[1] == "status: local 0/10 remote 0/497"
    assert "deferral" not in log and "failure" not in log
    assert collections.Counter(sink.deliveries()) == want


def test_hup_changes_concurrency_without_leaving_the_allocated_table(qmail):
    qmail.control.write("concurrencyremote", "40\n")
    sink = qmail.sink(hold=HOLD)
    want = queue(15)  # 60 deliveries
    qh.need_descriptors(3000)
    send = qmail.send(limits={resource.RLIMIT_NOFILE: (1024, 3000)})  # qmail-rspawn: 1497
    send.wait_until(lambda: sink.status()["held"] == 40, 120, "40 deliveries held")

    # lower while 40 are running: those in slots 10..39 must still be reported
    qmail.control.write("concurrencyremote", "10\n")
    send.hup()
    send.wait_until(lambda: "status: local 0/10 remote 40/10" in send.log(), 120, "the new limit")
    sink.release()
    send.wait_until(lambda: send.successes() >= 40, 120, "the 40 to finish")
    send.wait_until(lambda: sink.status()["held"] == 10, 120, "10 new deliveries")
    assert sink.status()["peak_held"] == 10

    # raise past what qmail-rspawn can run: capped at its 1497, with a warning
    qmail.control.write("concurrencyremote", "100000\n")
    send.hup()
    send.wait_until(lambda: sink.status()["held"] == 20, 120, "the other 20 deliveries")
    sink.hold_nobody()
    send.wait_until(lambda: send.successes() >= 60, 120, "all 60 deliveries")
    send.stop()
    sink.stop()
    log = send.log()
    assert "delivery report out of range" not in log
    assert warnings(log) == [
        f"warning: concurrencyremote 100000 is above the 1497 deliveries qmail-rspawn can run "
        f"at once (conf-spawn {CONF_SPAWN}, lowered by its descriptor or process limits); using 1497"]
    assert "status: local 0/10 remote 10/1497" in log
    assert "deferral" not in log and "failure" not in log
    assert collections.Counter(sink.deliveries()) == want
