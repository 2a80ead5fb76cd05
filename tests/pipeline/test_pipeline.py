"""The build pipeline: verified input, patches with zero fuzz, overlay isolation."""

import fnmatch
import os
import re
import shutil
import subprocess
import tarfile

import pytest

import qmail_harness as qh

TOP, TARBALL, TREE, HOME = qh.TOP, qh.TARBALL, qh.TREE, qh.HOME


def run(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


@pytest.fixture
def stock_tree(tmp_path):
    with tarfile.open(TARBALL) as t:
        t.extractall(tmp_path / "x")
    return tmp_path / "x/netqmail-1.06"


def test_stock_tarball_is_accepted(tmp_path):
    r = run(TOP / "tools/stock-source", TARBALL, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "434 files match the stock manifest" in r.stderr
    assert (tmp_path / "out/netqmail-1.06/qmail-smtpd.c").is_file()
    assert (tmp_path / "out/netqmail-1.06/.verified").is_file()


def test_unpacked_tree_is_accepted(tmp_path, stock_tree):
    r = run(TOP / "tools/stock-source", stock_tree, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out/netqmail-1.06/spawn.c").is_file()


def test_tampered_tarball_is_refused_naming_the_files(tmp_path, stock_tree):
    with open(stock_tree / "qmail-smtpd.c", "a") as f:
        f.write("/* tampered */\n")
    (stock_tree / "spawn.c").unlink()
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as t:
        t.add(stock_tree, arcname="netqmail-1.06")
    r = run(TOP / "tools/stock-source", bad, tmp_path / "out")
    assert r.returncode != 0
    assert "differs from stock: qmail-smtpd.c" in r.stderr
    assert "missing: spawn.c" in r.stderr
    assert "refusing to build" in r.stderr
    assert not (tmp_path / "out/netqmail-1.06").exists()


def test_extra_files_do_not_matter_but_are_not_copied(tmp_path, stock_tree):
    (stock_tree / "other-patches").mkdir()
    (stock_tree / "other-patches/x.patch").write_text("whatever\n")
    r = run(TOP / "tools/stock-source", stock_tree, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "out/netqmail-1.06/other-patches").exists()


def test_missing_tarball_explains_how_to_provide_it(tmp_path):
    r = run(TOP / "tools/stock-source", tmp_path / "none/netqmail-1.06.tar.gz", tmp_path / "out")
    assert r.returncode != 0
    assert "git --git-dir=" in r.stderr and "NETQMAIL_TARBALL" in r.stderr


@pytest.mark.parametrize("hunk,said", [
    # right file, context off by one line: applies only with fuzz
    ("@@ -1,3 +1,4 @@\n #include \"sig.h\"\n NOT THE NEXT LINE\n #include \"stralloc.h\"\n+/* x */\n",
     "patch 0001-bad.patch does not apply"),
    # right context, one line late: applies only at an offset (which patch -s
    # would not even mention)
    ("@@ -4,2 +4,3 @@\n #include \"stralloc.h\"\n+/* x */\n #include \"substdio.h\"\n",
     "(offset -1 lines).\nprepare-tree: fatal: patch 0001-bad.patch applied with complaints"),
])
def test_patch_that_needs_fuzz_or_an_offset_stops_the_build(tmp_path, hunk, said):
    fake = tmp_path / "proj"
    shutil.copytree(TOP / "tools", fake / "tools")
    (fake / "src-overlay").mkdir()
    (fake / "doc").mkdir()
    (fake / "patches").mkdir()
    (fake / "patches/0001-bad.patch").write_text(
        "Description: bad\nAuthor: test\nLast-Update: 2026-11-22\n\n"
        "--- a/qmail-smtpd.c\n+++ b/qmail-smtpd.c\n" + hunk)
    (fake / "patches/series").write_text("0001-bad.patch\n")
    r = run(fake / "tools/prepare-tree", qh.STOCKSRC, tmp_path / "tree", "patched")
    assert r.returncode != 0
    assert said in r.stderr
    assert not (tmp_path / "tree").exists()


def series():
    lines = (TOP / "patches/series").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_every_patch_has_a_dep3_header():
    assert series(), "patches/series is empty"
    for name in series():
        text = (TOP / "patches" / name).read_text()
        header = text.split("\n---", 1)[0]
        assert re.search(r"^Description: \S", header, re.M), name
        assert re.search(r"^Author: \S", header, re.M), name
        assert re.search(r"^Last-Update: \d{4}-\d\d-\d\d$", header, re.M), name


def test_every_patch_applies_with_zero_fuzz_in_order(tmp_path):
    r = run(TOP / "tools/prepare-tree", qh.STOCKSRC, tmp_path / "t", "patched")
    assert r.returncode == 0, r.stderr
    assert f"applied {len(series())} patch(es)" in r.stderr


def test_overlay_exports_only_the_facade():
    obj = TREE / "smtpd-overlay.o"
    assert obj.is_file()
    out = run("nm", "--defined-only", "-g", obj).stdout
    strong = [l.split()[2] for l in out.splitlines() if l.split()[1] in "TDBR"]
    assert strong, "the facade is missing"
    patterns = (TOP / "src-overlay/smtpd-overlay.syms").read_text().split()
    for sym in strong:
        assert any(fnmatch.fnmatchcase(sym, p) for p in patterns), f"{sym} leaks out of smtpd-overlay.o"
    # tinycdb is inside, but cannot meet qmail's cdb_hash / cdb_seek; nor can
    # hiredis (linked in statically) meet anything of qmail's or a library's
    assert "cdb_hash" not in strong and "cdb_seek" not in strong
    assert "redisConnectWithTimeout" not in strong and "sdsnew" not in strong
    local = run("nm", "--defined-only", obj).stdout
    assert " t redisConnectWithTimeout" in local, "hiredis is not linked into smtpd-overlay.o"


def test_qmail_smtpd_links_no_exception_runtime():
    # cxx_runtime.cpp replaces what would pull libstdc++'s exception machinery
    # (its emergency-pool constructor would run at every exec)
    out = run("nm", "-u", TREE / "smtpd-overlay.o").stdout
    for sym in ("__cxa_throw", "__cxa_allocate_exception", "__cxa_guard_acquire", "__gxx_personality_v0"):
        assert sym not in out, f"smtpd-overlay.o needs {sym}"


def test_cxx_programs_link_with_gxx_and_warnings_are_errors():
    assert "-Werror" in (TREE / "conf-cxx").read_text().splitlines()[0]
    assert (TREE / "loadxx").read_text().count("g++") == 1
    assert "loadxx qmail-smtpd" in (TREE / "Makefile").read_text()


def test_install_keeps_existing_control_files():
    ctl = HOME / "control/me"
    before = ctl.read_bytes() if ctl.exists() else None
    ctl.write_text("kept.by.install.example\n")
    try:
        r = run(TOP / "tools/install-qmail", TREE, env={**os.environ, "QMAIL_HOME": str(HOME)})
        assert r.returncode == 0, r.stderr
        assert ctl.read_text() == "kept.by.install.example\n"
        assert (HOME / "bin/qmail-smtpd").stat().st_mode & 0o111
        assert (HOME / "bin/qmail-queue").stat().st_mode & 0o4000  # setuid qmailq, as qmail installs it
    finally:
        if before is None:
            ctl.unlink()
        else:
            ctl.write_bytes(before)


def test_install_refuses_a_tree_built_for_another_home(tmp_path):
    r = run(TOP / "tools/install-qmail", TREE, env={**os.environ, "QMAIL_HOME": str(tmp_path)})
    assert r.returncode != 0
    assert "was built for" in r.stderr


def test_install_makes_the_throttle_state_directory_for_qmail_smtpd():
    import grp
    import pwd
    state = HOME / "throttle"
    st = state.stat()
    assert st.st_mode & 0o7777 == 0o700
    assert pwd.getpwuid(st.st_uid).pw_name == "qmaild"
    env = {**os.environ, "QMAIL_HOME": str(HOME)}
    try:
        # THROTTLE_OWNER chooses another owner, for what is inside too
        (state / "probe").write_text("x")
        r = run(TOP / "tools/install-qmail", TREE, env={**env, "THROTTLE_OWNER": "qmaill:nofiles"})
        assert r.returncode == 0, r.stderr
        for p in (state, state / "probe"):
            assert pwd.getpwuid(p.stat().st_uid).pw_name == "qmaill"
            assert grp.getgrgid(p.stat().st_gid).gr_name == "nofiles"
        # without it, an existing directory is left as it is
        r = run(TOP / "tools/install-qmail", TREE, env=env)
        assert r.returncode == 0, r.stderr
        assert pwd.getpwuid(state.stat().st_uid).pw_name == "qmaill"
        r = run(TOP / "tools/install-qmail", TREE, env={**env, "THROTTLE_OWNER": "no-such-user-qt"})
        assert r.returncode != 0 and "THROTTLE_OWNER" in r.stderr
    finally:
        (state / "probe").unlink(missing_ok=True)
        r = run(TOP / "tools/install-qmail", TREE, env={**env, "THROTTLE_OWNER": "qmaild"})
        assert r.returncode == 0, r.stderr
