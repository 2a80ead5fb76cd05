"""conf-spawn at build time: chkspawn's limits, and the fd_set that select.h
makes for it, also under -D_FORTIFY_SOURCE=2 (glibc's own FD_SET aborts
there for any descriptor from 1024 up)."""

import resource
import shutil
import subprocess
from pathlib import Path

import pytest

import qmail_harness as qh

TOP, TREE, FORTIFY = qh.TOP, qh.TREE, qh.FORTIFY

# Selects on descriptor FD (1500 unless -DFD=...) of a pipe with a byte in
# it, then prints how many descriptors fd_set holds.
PROBE = r"""
%(include)s
#include <stdio.h>
#include <unistd.h>
#ifndef FD
#define FD 1500
#endif

int main(void)
{
  int p[2];
  fd_set r;
  struct timeval tv;
  if (pipe(p) == -1 || dup2(p[0], FD) != FD || write(p[1], "x", 1) != 1) return 10;
  tv.tv_sec = 5; tv.tv_usec = 0;
  FD_ZERO(&r);
  FD_SET(FD, &r);
  if (select(FD + 1, &r, (fd_set *) 0, (fd_set *) 0, &tv) != 1) return 11;
  if (!FD_ISSET(FD, &r)) return 12;
  FD_CLR(FD, &r);
  if (FD_ISSET(FD, &r)) return 13;
  printf("%%lu\n", (unsigned long) (8 * sizeof(fd_set)));
  return 0;
}
"""


def run(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)


def allow_2000_descriptors():
    """preexec_fn of a probe on descriptor 1500 (the test calls
    qh.need_descriptors(2000) first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 2000)), hard))


def build_probe(tree: Path, tmp: Path, include: str, fd: int = 1500) -> Path:
    """Compile and link the probe with the tree's ./compile (its conf-cc)."""
    (tmp / "probe.c").write_text(PROBE % {"include": include})
    r = run(tree / "compile", f"-DFD={fd}", "-I", tree, "probe.c", cwd=tmp)
    assert r.returncode == 0, r.stderr
    r = run("cc", "-o", "probe", "probe.o", cwd=tmp)
    assert r.returncode == 0, r.stderr
    return tmp / "probe"


def test_fortify_tree_is_really_built_with_fortify():
    assert (FORTIFY / "conf-cc").read_text().splitlines()[0] == "cc -O2 -D_FORTIFY_SOURCE=2"


def test_select_h_sets_descriptors_past_1024_under_fortify(tmp_path):
    qh.need_descriptors(2000)
    probe = build_probe(FORTIFY, tmp_path, '#include "select.h"')
    r = run(probe, preexec_fn=allow_2000_descriptors)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert int(r.stdout) >= 2 * int((FORTIFY / "conf-spawn").read_text().split()[0]) + 5


def test_without_it_the_fortified_fd_set_aborts(tmp_path):
    """The same probe on the system's fd_set: proof that the toolchain really
    checks, so the test above means something."""
    qh.need_descriptors(2000)
    probe = build_probe(FORTIFY, tmp_path, "#include <sys/select.h>")
    r = run(probe, preexec_fn=allow_2000_descriptors)
    assert r.returncode == -6, (r.returncode, r.stdout)
    # glibc 2.36: "*** bit out of range 0 - FD_SETSIZE on fd_set ***";
    # older ones: "*** buffer overflow detected ***"
    assert "FD_SETSIZE" in r.stderr or "buffer overflow" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def scratch_tree(tmp_path_factory):
    """A copy of the built test tree, to rebuild chkspawn for other conf-spawn."""
    dest = tmp_path_factory.mktemp("spawn") / "netqmail-1.06"
    shutil.copytree(TREE, dest, symlinks=True)
    return dest


def chkspawn(tree: Path, value: str):
    r = run(TOP / "tools/setconf", tree / "conf-spawn", value)
    assert r.returncode == 0, r.stderr
    r = run("make", "-C", tree, "chkspawn")
    assert r.returncode == 0, r.stdout + r.stderr
    return run(tree / "chkspawn", cwd=tree)


@pytest.mark.parametrize("value", ["1", "120", "255", "509", "510", "10000", "65000"])
def test_chkspawn_accepts_conf_spawn_up_to_65000(scratch_tree, value):
    r = chkspawn(scratch_tree, value)
    assert (r.returncode, r.stderr) == (0, "")
    # a descriptor past 1024 only where select.h promises room for it
    fd = 1500 if 2 * int(value) + 5 > 1500 else 10
    if fd == 1500:
        qh.need_descriptors(2000)
    fdset = build_probe(scratch_tree, scratch_tree.parent, '#include "select.h"', fd)
    out = run(fdset, preexec_fn=allow_2000_descriptors)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= max(1024, 2 * int(value) + 5)
    if int(value) <= 509:  # the system's own fd_set is big enough: left alone
        assert int(out.stdout) == 1024


def test_chkspawn_refuses_more_than_65000(scratch_tree):
    r = chkspawn(scratch_tree, "65001")
    assert r.returncode == 1
    assert r.stderr == "Oops. You have set conf-spawn higher than 65000.\n"


def test_chkspawn_refuses_zero(scratch_tree):
    r = chkspawn(scratch_tree, "0")
    assert r.returncode == 1
    assert r.stderr == "Oops. You have set conf-spawn lower than 1.\n"
