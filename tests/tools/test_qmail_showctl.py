"""qmail-showctl as installed (patch 0050): it explains qmail-throttle's
control files, with their defaults, and warns about a limits table that is
missing or older than its sources, as it does for morercpthosts.cdb."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

OURS = ("relaylimits", "spamt", "spamt.cdb", "spamt.clients", "tarpitbudget", "throttlefail", "throttlestoresize",
        "throttlestore", "throttlestorepassword", "servercert.pem", "servercerts", "tlsserverciphers")
# what other tests may have left (an SMTP test's certificate included)
EXTRA = ("tarpitbudget", "throttlefail", "throttlestoresize", "throttlestore", "throttlestorepassword",
         "tlsserverciphers", "servercert.pem")


def clear(home) -> None:
    for name in EXTRA:
        home.control.remove(name)
    shutil.rmtree(home.control.path("servercerts"), ignore_errors=True)


@pytest.fixture
def ctl(home):
    clear(home)
    try:
        yield home
    finally:
        clear(home)


def showctl(home) -> dict[str, str]:
    """The report, as file name -> what qmail-showctl says about it."""
    r = subprocess.run([str(home.bin("qmail-showctl"))], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    said = {}
    for block in r.stdout.split("\n\n"):
        m = re.match(r"([^\s:]+): (.*)", block, re.S)
        if m:
            said[m.group(1)] = m.group(2).strip()
    return said


def write_settings(home, ciphers: str) -> None:
    home.control.write("tarpitbudget", "5\n")
    home.control.write("throttlefail", "closed\n")
    home.control.write("throttlestoresize", "64\n")
    home.control.write("tlsserverciphers", ciphers)


def newspamt(home):
    r = subprocess.run([str(home.bin("qmail-newspamt"))], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr


def test_defaults_are_explained(ctl):
    said = showctl(ctl)
    assert said["spamt"] == "(Default.) No limits."
    assert said["spamt.cdb"] == "(Default.) No limits table: qmail-smtpd throttles nothing."
    assert said["tarpitbudget"] == "(Default.) At most 20 sessions are held by the teergrube at once."
    assert said["throttlefail"] == "(Default.) When the throttle store fails, relay limits fail open."
    assert said["throttlestoresize"] == "(Default.) The throttle store holds at most 1024 MiB."
    assert said["throttlestore"] == ("(Default.) Relay limits are counted in the LMDB store in throttle/, "
                                     "on this host only.")
    assert said["throttlestorepassword"] == "(Default.) No password: qmail-smtpd does not authenticate to Redis."
    assert said["tlsserverciphers"] == "(Default.) OpenSSL's default ciphers."
    assert said["servercert.pem"].startswith("(Default.) No certificate")
    assert said["servercerts"].startswith("(Default.) No certificates by name")


def test_settings_and_table_state(ctl):
    ctl.control.write("spamt", "# an ISP\ndefault rcpt=100/1h\n\n@example.com rcpt=500/1d\n")
    write_settings(ctl, "HIGH\n!aNULL\n")
    said = showctl(ctl)
    assert said["spamt"].startswith("2 lines of limits")
    assert said["spamt.cdb"].startswith("Oops! spamt.cdb doesn't exist")
    assert said["tarpitbudget"] == "At most 5 sessions are held by the teergrube at once."
    assert said["throttlefail"] == "When the throttle store fails, relay limits fail closed."
    assert said["throttlestoresize"] == "The throttle store holds at most 64 MiB."
    assert said["tlsserverciphers"].splitlines() == ["TLS ciphers: HIGH", "TLS ciphers: !aNULL"]

    newspamt(ctl)
    assert showctl(ctl)["spamt.cdb"] == "Modified recently enough; hopefully up to date."

    # the source edited after the table was built
    later = time.time() + 5
    os.utime(ctl.control.path("spamt"), (later, later))
    assert showctl(ctl)["spamt.cdb"] == "Oops! spamt.cdb is older than its sources: run qmail-newspamt."

    # a table without any source
    ctl.control.remove("spamt")
    assert showctl(ctl)["spamt.cdb"] == "Oops! spamt.cdb exists but neither spamt nor relaylimits does."


def test_numbers_are_read_as_qmail_smtpd_reads_them(ctl):
    """One parser for qmail-showctl and qmail-smtpd (throttle_controls.h):
    what qmail-smtpd cannot use is called invalid, with the default that
    applies, not read as far as it looks like a number."""
    ctl.control.write("throttlestoresize", "2G\n")
    ctl.control.write("tarpitbudget", "-5\n")
    said = showctl(ctl)
    assert said["throttlestoresize"] == ("Oops! '2G' is not a whole number from 1 to 1048576: qmail-smtpd uses the "
                                         "default. The throttle store holds at most 1024 MiB.")
    assert said["tarpitbudget"] == ("Oops! '-5' is not a whole number from 0 to 1000000: qmail-smtpd uses the "
                                    "default. At most 20 sessions are held by the teergrube at once.")
    ctl.control.write("throttlestoresize", "0\n")  # out of range
    assert showctl(ctl)["throttlestoresize"].startswith("Oops! '0' is not a whole number from 1 to 1048576")
    ctl.control.write("throttlestoresize", "\n")  # empty: the default, as qmail-smtpd takes it
    assert showctl(ctl)["throttlestoresize"] == "(Default.) The throttle store holds at most 1024 MiB."
    ctl.control.write("tarpitbudget", "0\n")  # no teergrube at all is a valid budget
    assert showctl(ctl)["tarpitbudget"] == "At most 0 sessions are held by the teergrube at once."


def test_the_redis_store_is_shown_without_its_password(ctl):
    ctl.control.write("throttlestore", "redis-sentinel://10.0.0.1,10.0.0.2/mymaster?timeout=300\n")
    p = ctl.control.write("throttlestorepassword", "not-to-be-shown\n", mode=0o400)
    said = showctl(ctl)
    assert said["throttlestore"] == ("Relay limits are counted in redis-sentinel://10.0.0.1,10.0.0.2/mymaster?timeout=300, "
                                     "shared by every host that names it (qmail-throttle-redis(8)).")
    assert said["throttlestorepassword"] == ("The Redis password (not shown); only its owner and group may read it.")
    os.chmod(p, 0o644)
    said = showctl(ctl)
    assert said["throttlestorepassword"].startswith("Oops! Others may read or write it: qmail-smtpd refuses it.")
    # a password put into the URL anyway (qmail-smtpd refuses it) is not repeated
    ctl.control.write("throttlestore", "redis://qmail:hunter2@10.0.0.5:6379/0?password=hunter3&timeout=9\n")
    r = subprocess.run([str(ctl.bin("qmail-showctl"))], capture_output=True, text=True, timeout=20)
    assert "hunter2" not in r.stdout and "hunter3" not in r.stdout and "not-to-be-shown" not in r.stdout
    assert "redis://qmail:***@10.0.0.5:6379/0?password=***&timeout=9" in r.stdout
    ctl.control.write("throttlestore", "lmdb\n")
    assert showctl(ctl)["throttlestore"] == "Relay limits are counted in the LMDB store in throttle/, on this host only."


def test_relaylimits_alone_is_a_source(ctl):
    ctl.control.write("relaylimits", "alice@example.com:100\n192.0.2.7:50\n")
    said = showctl(ctl)
    assert said["relaylimits"].startswith("2 relay limits")
    newspamt(ctl)
    assert showctl(ctl)["spamt.cdb"] == "Modified recently enough; hopefully up to date."


def test_none_of_ours_is_unknown(ctl):
    ctl.control.write("spamt", "default rcpt=100/1h\n")
    write_settings(ctl, "HIGH\n")
    newspamt(ctl)
    ctl.control.path("servercerts").mkdir()
    try:
        r = subprocess.run([str(ctl.bin("qmail-showctl"))], capture_output=True, text=True, timeout=20)
    finally:
        ctl.control.path("servercerts").rmdir()
    assert "servercerts: A client that asks for NAME (SNI) gets servercerts/NAME.pem" in r.stdout
    for name in OURS:
        assert f"{name}: I have no idea" not in r.stdout
    # and the stock check still works for files it does not know
    ctl.control.write("nosuchcontrol", "x\n")
    try:
        r = subprocess.run([str(ctl.bin("qmail-showctl"))], capture_output=True, text=True, timeout=20)
        assert "nosuchcontrol: I have no idea what this file does." in r.stdout
    finally:
        ctl.control.remove("nosuchcontrol")


def test_spamt_clients_says_whether_the_table_has_client_limits(ctl):
    """qmail-newspamt keeps control/spamt.clients exactly when some entry has
    client limits (conn=, connrate=, ...); qmail-smtpd looks at the table
    before its greeting only then."""
    assert showctl(ctl)["spamt.clients"] == ("(Default.) No entry has client limits: qmail-smtpd looks "
                                             "no client up before its greeting.")
    ctl.control.write("spamt", "default rcpt=100/1h\n10.0.0.0/8 exempt\n")
    newspamt(ctl)
    assert showctl(ctl)["spamt.clients"].startswith("(Default.) No entry has client limits")
    ctl.control.write("spamt", "default conn=50 connrate=30/1m\n")
    newspamt(ctl)
    assert ctl.control.path("spamt.clients").exists()
    said = showctl(ctl)
    assert said["spamt.clients"] == ("spamt.cdb has client limits (conn=, connrate=, inmsg=, inrcpt=, tlsrate=, "
                                     "authrate=): qmail-smtpd looks every client up before its greeting. "
                                     "qmail-newspamt keeps this file.")
    assert said["spamt.cdb"] == "Modified recently enough; hopefully up to date."
    ctl.control.remove("spamt.cdb")
    ctl.control.remove("spamt")
    assert showctl(ctl)["spamt.clients"] == "Oops! spamt.clients exists but spamt.cdb doesn't: run qmail-newspamt."


def test_concurrencydomains_is_read_as_qmail_send_reads_it(ctl):
    ctl.control.remove("concurrencydomains")
    assert showctl(ctl)["concurrencydomains"].startswith("(Default.) No per-destination limits")
    try:
        ctl.control.write("concurrencydomains", "* 5\nmx:.google.com 40 rate=3000/1h failures=3 pause=10m\n")
        said = showctl(ctl)["concurrencydomains"].splitlines()
        assert said[0] == "2 destinations with limits of their own (concurrencydomains(5)):"
        assert said[1].strip() == "line 1: * (default) limit 5 pause 5m after 5 failures"
        assert said[2].strip() == "line 2: mx:.google.com (mx suffix) limit 40 rate 3000/1h pause 10m after 3 failures"
        ctl.control.write("concurrencydomains", "example.com 5 speed=1\n")
        said = showctl(ctl)["concurrencydomains"].splitlines()
        assert said[0].startswith("Oops! This file has errors")
        assert said[1].strip() == "line 1: unknown setting 'speed=1' (rate=N/PERIOD, failures=N, pause=PERIOD)"
    finally:
        ctl.control.remove("concurrencydomains")
