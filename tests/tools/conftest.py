"""Fixtures for tests of qmail-throttle's programs, run as installed in the
throwaway home (make test-install)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import qmail_harness as qh

SPAMT_FILES = ("spamt", "spamt.cdb", "spamt.cdb.tmp", "relaylimits")


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
