"""qmail-newspamt as installed: compiles control/spamt and control/relaylimits
into control/spamt.cdb atomically, reports every bad line and keeps the old
table, writes a cdb tinycdb's own tool can dump, and explains lookups."""

from __future__ import annotations

import fcntl
import os
import subprocess

GOOD = """\
# limits of a small ISP
default rcpt=1000/1d authfail=5/10m st=1500 stmax=120000
@example.com rcpt=5000/1d
alice@example.com rcpt=100/1h,1000/1d action=421
user:postmaster rcpt=0
192.0.2.0/24 exempt
198.51.100.0/24 rcpt=300/1h each st=2000 tg=10 tgtext="please wait: busy"
2001:db8::/32 msg=50/1h
"""


def newspamt(home, *args, timeout=20):
    return subprocess.run([str(home.bin("qmail-newspamt")), *args], capture_output=True, text=True,
                          timeout=timeout)


def cdb_dump(home) -> bytes:
    r = subprocess.run(["cdb", "-d", str(home.control.path("spamt.cdb"))], capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout


def dump_records(dump: bytes) -> dict[bytes, bytes]:
    """Parses cdb -d output: +klen,dlen:key->data lines, then an empty line."""
    records, pos = {}, 0
    while dump[pos:pos + 1] == b"+":
        head_end = dump.index(b":", pos)
        klen, dlen = (int(x) for x in dump[pos + 1:head_end].split(b","))
        key = dump[head_end + 1:head_end + 1 + klen]
        arrow = head_end + 1 + klen
        assert dump[arrow:arrow + 2] == b"->"
        records[key] = dump[arrow + 2:arrow + 2 + dlen]
        pos = arrow + 2 + dlen
        assert dump[pos:pos + 1] == b"\n"
        pos += 1
    assert dump[pos:] == b"\n"
    return records


def test_good_file_compiles_to_a_dumpable_cdb(home):
    home.control.write("spamt", GOOD)
    r = newspamt(home)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    cdb = home.control.path("spamt.cdb")
    assert oct(cdb.stat().st_mode & 0o777) == "0o644"  # qmail-smtpd runs as qmaild
    assert not home.control.path("spamt.cdb.tmp").exists()
    dump = cdb_dump(home)
    # tinycdb's cdb -d: +klen,dlen:key->data
    assert dump.startswith(b"+7,22:!format->qmail-throttle spamt 2\n")
    records = dump_records(dump)
    assert len(records) == 2 + 7  # format, index, 7 entries
    assert records[b"!format"] == b"qmail-throttle spamt 2"
    assert b"u:alice@example.com" in records and b"d:example.com" in records and b"!default" in records
    for text in (b"u:alice@example.com", b"d:example.com", b"u:postmaster", b"n:192.0.2.0/24",
                 b"n:198.51.100.0/24", b"n:2001:db8::/32", b"please wait: busy", b"control/spamt:4"):
        assert text in dump, text
    assert (home.dir / "man/man5/spamt.5").exists()
    assert (home.dir / "man/cat8/qmail-newspamt.0").exists()


def test_output_is_deterministic(home):
    home.control.write("spamt", GOOD)
    home.control.write("relaylimits", "bob@example.com:50\n1.2.3.4:3000\n")
    assert newspamt(home).returncode == 0
    first = home.control.path("spamt.cdb").read_bytes()
    assert newspamt(home).returncode == 0
    assert home.control.path("spamt.cdb").read_bytes() == first


def test_bad_lines_are_all_reported_and_the_old_table_stays(home):
    home.control.write("spamt", GOOD)
    assert newspamt(home).returncode == 0
    cdb = home.control.path("spamt.cdb")
    before, inode = cdb.read_bytes(), cdb.stat().st_ino
    home.control.write("spamt", GOOD + "192.0.2.7/24 rcpt=1/1h\nbogus st=1\nalice@example.com msg=1/1d\n"
                       "10.0.0.0/8 rcpt=100\n10.1.0.0/16:x:fast:::::\n")
    home.control.write("relaylimits", "nocolon\n")
    r = newspamt(home)
    assert r.returncode == 111
    lines = r.stderr.splitlines()
    assert lines[0].startswith("control/spamt:9: '192.0.2.7/24' has host bits set; the block is 192.0.2.0/24")
    assert lines[1].startswith("control/spamt:10: unknown identity 'bogus'")
    assert lines[2].startswith("control/spamt:12: rcpt=100: limit '100' needs a period")
    assert lines[3].startswith("control/spamt:13: spamthrottle line needs 8 fields")
    assert lines[4].startswith("control/relaylimits:1: expected key:N")
    assert lines[5] == "control/spamt:11: alice@example.com is already defined at control/spamt:4 " \
                       "(give all its settings on one line)"
    assert lines[6] == "qmail-newspamt: fatal: 6 errors; control/spamt.cdb left unchanged"
    assert len(lines) == 7
    assert cdb.read_bytes() == before and cdb.stat().st_ino == inode
    assert not home.control.path("spamt.cdb.tmp").exists()


def test_check_only_writes_nothing(home):
    home.control.write("spamt", GOOD)
    r = newspamt(home, "-n")
    assert r.returncode == 0, r.stderr
    assert not home.control.path("spamt.cdb").exists()
    home.control.write("spamt", "bogus st=1\n")
    r = newspamt(home, "-n")
    assert r.returncode == 111
    assert "control/spamt:1: unknown identity" in r.stderr


def test_missing_sources_and_usage(home):
    r = newspamt(home)
    assert r.returncode == 111
    assert "neither control/spamt nor control/relaylimits exists" in r.stderr
    assert newspamt(home, "-x").returncode == 100
    assert newspamt(home, "extra").returncode == 100
    r = newspamt(home, "-x", "192.0.2.7")
    assert r.returncode == 111
    assert "control/spamt.cdb: missing (no limits table: nothing is limited)" in r.stderr


def test_a_second_run_at_the_same_time_refuses(home):
    home.control.write("spamt", GOOD)
    tmp = home.control.path("spamt.cdb.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = newspamt(home)
        assert r.returncode == 111
        assert "another qmail-newspamt is writing control/spamt.cdb.tmp" in r.stderr
        assert not home.control.path("spamt.cdb").exists()
    finally:
        os.close(fd)
    assert newspamt(home).returncode == 0


def test_explain_says_which_entries_apply_and_why(home):
    home.control.write("spamt", GOOD)
    assert newspamt(home).returncode == 0
    r = newspamt(home, "-x", "198.51.100.9", "Alice@Example.com")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "table control/spamt.cdb: 7 entries" in out
    assert "  user alice@example.com: rcpt=100/1h,1000/1d msg=0 action=421, budget u:alice@example.com " \
           "(control/spamt:4)" in out
    assert "  domain @example.com: rcpt=5000/1d msg=0 action=451, budget d:example.com (control/spamt:3)" in out
    assert "  network 198.51.100.0/24: rcpt=300/1h msg=0 action=451 each, budget a:198.51.100.9 " \
           "(control/spamt:7)" in out
    assert "(the default does not apply: another entry matches)" in out
    assert "  from network 198.51.100.0/24 (control/spamt:7): st=2000ms tg=10s tgtext=\"please wait: busy\"" in out
    assert "  from default (control/spamt:2): stmax=120000ms" in out
    assert "  5/10m from default (control/spamt:2), budget a:198.51.100.9" in out

    r = newspamt(home, "-x", "::ffff:192.0.2.20", "alice@example.com")
    assert "  exempt by network 192.0.2.0/24 (control/spamt:6): no relay limit applies" in r.stdout
    r = newspamt(home, "-x", "2001:db8:1:2::3")
    assert "  network 2001:db8::/32: rcpt=0 msg=50/1h action=451, budget n:2001:db8::/32 (control/spamt:8)" in r.stdout
    assert "state key n:2001:db8:1:2::/64" in r.stdout
    r = newspamt(home, "-x", "not-an-ip")
    assert r.returncode == 111
    assert "not an IP address: not-an-ip" in r.stderr

    # an edited source newer than the table is pointed out
    later = home.control.path("spamt.cdb").stat().st_mtime + 10
    home.control.write("spamt", GOOD + "203.0.113.1 st=1\n")
    os.utime(home.control.path("spamt"), (later, later))
    r = newspamt(home, "-x", "203.0.113.1")
    assert "warning: control/spamt is newer than control/spamt.cdb: run qmail-newspamt to use it" in r.stdout


def test_relaylimits_compatibility(home):
    # rcptcheck-overlimit's file, bugs gone: exact keys, the default replaced
    home.control.write("relaylimits", "# limits\n:1000\n1.2.3.4:3000\ntestinfo@example.com:5\n11.2.3.4:1\n"
                                      "info@example.com:7\nINFO@example.com:8\n")
    r = newspamt(home)
    assert r.returncode == 0, r.stderr
    assert "control/relaylimits:7: warning: info@example.com replaces the line at control/relaylimits:6" in r.stderr

    def relay(ip, user=""):
        out = newspamt(home, "-x", ip, *([user] if user else [])).stdout
        start = out.index("relay limits")
        return out[start:out.index("teergrube (")]

    assert "address 1.2.3.4: rcpt=3000/1d msg=0 action=421 unauthenticated, budget a:1.2.3.4" in relay("1.2.3.4")
    assert "default: rcpt=1000/1d msg=0 action=421, budget a:1.2.3.5" in relay("1.2.3.5")
    assert "address 11.2.3.4: rcpt=1/1d msg=0 action=421 unauthenticated" in relay("11.2.3.4")
    assert "user info@example.com: rcpt=8/1d" in relay("9.9.9.9", "info@example.com")
    assert "default: rcpt=1000/1d msg=0 action=421, budget u:other@example.com" in relay("1.2.3.4", "other@example.com")


def test_spamthrottle_file_compiles_unchanged(home):
    home.control.write("spamt", "# network:dir:st:stmax:flush:rcpt:tg:tg_resp:\n"
                                "::0:::::::\n"
                                "10.0.0.0/16:/32:::::::\n"
                                "10.1.0.0/24::0::::::\n"
                                "10.1.2.1/32:abuse:5000::1::3:slow down, please:\n"
                                "10.1.3.0/24:abuse:5000::::::\n"
                                ".\n")
    r = newspamt(home)
    assert r.returncode == 0, r.stderr
    out = newspamt(home, "-x", "10.1.3.9").stdout
    assert "from network 10.1.3.0/24 (control/spamt:6): st=5000ms group=abuse" in out
    assert "state key g:abuse" in out
    out = newspamt(home, "-x", "10.1.2.1").stdout
    assert "st=5000ms flush=yes tg=3s tgtext=\"slow down, please\" group=abuse" in out
    out = newspamt(home, "-x", "10.0.9.9").stdout
    assert "teergrube off (st=0), state key a:10.0.9.9" in out


def test_a_table_of_another_format_is_refused(home):
    # what spamthrottle's qmail-newst wrote: a "" key, no format version
    home.control.write("spamt", "::1500:120000::::::\n.\n")
    r = subprocess.run(["cdb", "-c", str(home.control.path("spamt.cdb"))], input=b"+0,11:->\0\0\0\0\0\0\0\0\0\0\0\n\n",
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    r = newspamt(home, "-x", "192.0.2.7")
    assert r.returncode == 111
    assert "control/spamt.cdb: wrong format version (run qmail-newspamt to rebuild it)" in r.stderr
    assert newspamt(home).returncode == 0
    assert newspamt(home, "-x", "192.0.2.7").returncode == 0
