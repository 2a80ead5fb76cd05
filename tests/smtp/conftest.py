"""Fixtures for SMTP-level tests against the real, installed qmail."""

from __future__ import annotations

import os

import pytest

import destinations as dh
import qmail_harness as qh


class Qmail:
    """One test's view of the throwaway installation: fresh control files and
    queue, and every server it starts stopped at the end, also on failure."""

    def __init__(self):
        self.home = qh.HOME
        self.control = qh.Control()
        self.queue = qh.Queue()
        self._running = []

    def smtpd(self, **kw) -> qh.SmtpServer:
        srv = qh.SmtpServer(**kw)
        self._running.append(srv)
        return srv.start()

    def smtpd6(self, netns: str, **kw) -> qh.Smtpd6Server:
        """qmail-smtpd behind an IPv6 ucspi-tcp server in network namespace netns."""
        srv = qh.Smtpd6Server(netns, **kw)
        self._running.append(srv)
        return srv.start()

    def stock_smtpd(self, **kw) -> qh.SmtpServer:
        return self.smtpd(smtpd=qh.STOCK_SMTPD, name="stock-smtpd", **kw)

    def send(self, **kw) -> qh.QmailSend:
        s = qh.QmailSend(**kw)
        self._running.append(s)
        return s.start()

    def sink(self, **kw) -> qh.SmtpSink:
        """A remote SMTP server that holds sessions; smtproutes points at it."""
        s = qh.SmtpSink(**kw)
        self._running.append(s)
        s.start()
        s.route(self.control)
        return s

    def dest_sink(self, listen: dict, **kw) -> dh.DestSink:
        """Listeners for several destinations (tests/smtp/dest_sink.py)."""
        s = dh.DestSink(listen, **kw)
        self._running.append(s)
        return s.start()

    def netns(self, records: dict | None, **kw) -> dh.NetNs:
        """A network namespace (with DNS, given records) of the test's own; stopped last."""
        ns = dh.NetNs(records, **kw)
        self._running.insert(0, ns)
        return ns.start()

    def stop_all(self):
        # sinks first: a session the sink holds keeps qmail-send from exiting
        for s in self._running:
            if isinstance(s, (qh.SmtpSink, dh.DestSink)):
                s.stop()
        while self._running:
            self._running.pop().stop()


@pytest.fixture
def qmail():
    if os.geteuid() != 0:
        pytest.fail("SMTP tests need root (qmail's uids); run them through `make test`")
    if not qh.PATCHED_SMTPD.exists():
        pytest.fail(f"no installed qmail at {qh.HOME}; run `make test-install` first")
    q = Qmail()
    q.control.reset()
    q.queue.clear()
    qh.reset_users()
    qh.reset_throttle()
    try:
        yield q
    finally:
        q.stop_all()


@pytest.fixture(params=["lmdb", "redis"])
def any_store(request, qmail):
    """The test runs once with each store: the LMDB store of this host, and
    a Redis started for it (control/throttlestore)."""
    if request.param == "lmdb":
        yield None
        return
    import redis_harness as rh
    with rh.RedisServer() as redis:
        rh.use_store(qmail.control, redis.url)
        yield redis
