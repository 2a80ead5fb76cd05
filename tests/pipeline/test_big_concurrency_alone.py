"""Patches 0010-0013 (big remote concurrency) are the part a qmail
maintainer could take alone: applied with zero fuzz to unmodified
netqmail-1.06, without the build plumbing (0001-0003) and without the C++
overlay, they build qmail-send and the spawns for a conf-spawn above 255,
and those speak two-byte delivery numbers."""

import os
import resource
import shutil
import subprocess

import pytest

import qmail_harness as qh

TOP = qh.TOP
CONF_SPAWN = 1000  # past stock's 255, and past glibc's fd_set (509)
PROGRAMS = ["qmail-send", "qmail-rspawn", "qmail-lspawn", "qmail-remote", "qmail-clean", "chkspawn"]


def run(*cmd, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def big_concurrency_patches():
    lines = (TOP / "patches/series").read_text().splitlines()
    names = [ln.split("#")[0].strip() for ln in lines]
    return [n for n in names if n.startswith("001")]


def test_the_patches_say_they_apply_alone():
    names = big_concurrency_patches()
    assert [n[:4] for n in names] == ["0010", "0011", "0012", "0013"]
    for name in names:
        header = (TOP / "patches" / name).read_text().split("\n---", 1)[0]
        assert "\nForwarded: not-yet" in header, name
        assert "apply alone" in " ".join(header.split()), name


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The verified stock sources with only 0010-0013 applied, built for a
    home of their own: (tree, home, patch output, make result)."""
    base = tmp_path_factory.mktemp("alone")
    tree, home = base / "netqmail-1.06", base / "home"
    shutil.copytree(qh.STOCKSRC, tree, symlinks=True)
    (tree / ".verified").unlink()
    (home / "queue/mess").mkdir(parents=True)
    (home / "queue/lock").mkdir()
    out = []
    for name in big_concurrency_patches():
        with open(TOP / "patches" / name) as f:
            r = run("patch", "-p1", "-F0", "-N", "--no-backup-if-mismatch", "-r", "-", stdin=f, cwd=tree)
        # (not -s: it would hide "Hunk #1 succeeded at 300 (offset 3 lines)")
        said = [ln for ln in (r.stdout + r.stderr).splitlines() if not ln.startswith("patching file ")]
        out.append((name, r.returncode, said))
        if r.returncode != 0:
            return tree, home, out, None
    for conf, value in (("conf-qmail", home), ("conf-spawn", CONF_SPAWN)):
        r = run(TOP / "tools/setconf", tree / conf, value)
        assert r.returncode == 0, r.stderr
    r = run(TOP / "tools/qmail-users", home)
    assert r.returncode == 0, r.stderr
    made = run("make", "-j2", *PROGRAMS, cwd=tree, timeout=1800)
    return tree, home, out, made


def test_they_apply_with_zero_fuzz_and_nothing_else_to_say(alone):
    # nothing but "patching file": not even an offset
    _, _, out, _ = alone
    assert out == [(name, 0, []) for name, _, _ in out]


def test_they_build_without_the_overlay(alone):
    tree, _, _, made = alone
    assert made is not None and made.returncode == 0, made and (made.stdout + made.stderr)[-3000:]
    for p in PROGRAMS:
        assert os.access(tree / p, os.X_OK), p
    # nothing of the build plumbing or the overlay was there to help
    assert not (tree / "Makefile.overlay").exists() and not (tree / "conf-cxx").exists()
    assert "Makefile.overlay" not in (tree / "Makefile").read_text()


def test_chkspawn_accepts_the_large_conf_spawn(alone):
    tree, _, _, made = alone
    assert made is not None and made.returncode == 0
    r = run(tree / "chkspawn", cwd=tree)
    assert (r.returncode, r.stderr) == (0, "")


def test_the_spawn_announces_it_and_echoes_delivery_numbers_in_two_bytes(alone):
    tree, home, _, made = alone
    assert made is not None and made.returncode == 0
    need = 2 * CONF_SPAWN + 5
    qh.need_descriptors(need)

    def limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))

    p = subprocess.Popen([str(tree / "qmail-rspawn")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         preexec_fn=limits)
    try:
        def read(n):
            got = b""
            while len(got) < n:
                chunk = p.stdout.read(n - len(got))
                assert chunk, f"qmail-rspawn closed its output after {got!r}"
                got += chunk
            return got

        announced = read(2)
        assert announced[0] + 256 * announced[1] == CONF_SPAWN
        last = CONF_SPAWN - 1
        p.stdin.write(bytes([last & 255, last >> 8]) + b"1/99999999\0a@b.example\0c@d.example\0")
        p.stdin.flush()
        num = read(2)
        text = b""
        while not text.endswith(b"\0"):
            text += read(1)
        assert (num[0] + 256 * num[1], text) == (last, b"Zqmail-spawn unable to open message. (#4.3.0)\n\0")
        p.stdin.close()
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
