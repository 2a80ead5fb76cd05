"""Every way out of qmail-smtpd gives back what was not queued, also the
C++ runtime's fatal end (cxx_runtime.cpp's die(): out of memory).

Memory runs out on purpose: failmalloc.c, preloaded, makes one malloc() of
qmail-smtpd fail at the moment the test chooses (a file appears), which is
what a process under a low RLIMIT_AS sees, without depending on how much
memory the process happens to use."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import qmail_harness as qh
import relaylimits as rl
import tlsauth as ta

SOURCE = Path(__file__).with_name("failmalloc.c")


@pytest.fixture
def failmalloc():
    """(the shim, the file that arms it), in a directory qmaild can read."""
    d = Path(tempfile.mkdtemp(prefix="qt-failmalloc-"))
    try:
        os.chmod(d, 0o755)
        shim = d / "failmalloc.so"
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(shim), str(SOURCE)], check=True, timeout=120)
        yield shim, d / "arm"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_running_out_of_memory_in_the_cxx_runtime_gives_back_the_charges(qmail, failmalloc):
    shim, arm = failmalloc
    rl.table(qmail, "default rcpt=5/1h\n")
    srv = qmail.smtpd(args=ta.auth_args(), env={**rl.RELAY, "LD_PRELOAD": str(shim), "QT_FAILMALLOC_ARM": str(arm)})
    s = rl.session(srv)
    assert s.cmd("MAIL FROM:<a@client.example>") == b"250 ok\r\n"
    assert rl.rcpts(s, rl.far(2)) == [b"250 ok\r\n"] * 2
    assert rl.used("127.0.0.1") == 2
    # the next allocation fails: the AUTH reply's, made by the C++ of smtpd_auth
    arm.touch()
    s.send("AUTH PLAIN\r\n")
    assert s.rest() == b""  # the process ended without a reply
    s.close()
    assert qh.wait_for(lambda: srv.children() == []), srv.log()
    assert "qmail-smtpd: throttle: fatal: out of memory\n" in srv.log()
    assert rl.used("127.0.0.1") == 0
