"""Fixtures for tests of qmail-throttle's programs, run as installed in the
throwaway home (make test-install)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

import qmail_harness as qh


def _smtp_fixtures():
    """tests/smtp's conftest, loaded under a name of its own: its fixtures
    serve the tests here that run qmail-smtpd under tcpserver."""
    path = Path(__file__).resolve().parent.parent / "smtp" / "conftest.py"
    spec = importlib.util.spec_from_file_location("smtp_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_smtp = _smtp_fixtures()
qmail = _smtp.qmail  # fresh control/, queue and throttle/; servers stopped at the end
any_store = _smtp.any_store  # once with LMDB, once with a Redis of its own

SPAMT_FILES = ("spamt", "spamt.cdb", "spamt.cdb.tmp", "spamt.clients", "relaylimits")


class Home:
    """The installation's home, with control/spamt* cleared before and after."""

    def __init__(self):
        self.dir = qh.HOME
        self.control = qh.Control()

    def clear(self):
        for name in SPAMT_FILES:
            self.control.remove(name)

    def bin(self, name: str) -> Path:
        return self.dir / "bin" / name


@pytest.fixture
def home():
    if os.geteuid() != 0:
        pytest.fail("these tests need root (they write the installed control/); run them through `make test`")
    h = Home()
    if not h.bin("qmail-newspamt").exists():
        pytest.fail(f"no installed qmail at {h.dir}; run `make test-install` first")
    h.clear()
    try:
        yield h
    finally:
        h.clear()
