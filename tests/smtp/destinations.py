"""Helpers for the per-destination limit tests (control/concurrencydomains).

- DestSink: tests/smtp/dest_sink.py, several SMTP listeners that count the
  sessions each destination sees at once (always stopped by the fixture).
- NetNs: a network namespace of the test's own, with loopback up, a
  resolv.conf of its own (ip netns exec mounts it over /etc/resolv.conf) and
  dnsmasq serving the test's MX and A records on 127.0.0.1:53 inside it.
  qmail-send, qmail-remote and the sinks run inside; nothing leaves it.
  Without records, only loopback (and the addresses asked for on it).
- destinations_tool(): runs the installed qmail-destinations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import qmail_harness as qh


class DestSink:
    PROGRAM = Path(__file__).resolve().parent / "dest_sink.py"

    def __init__(self, listen: dict[str, list[str]], wrap=(), name: str = "dest-sink"):
        """listen: {"ADDR:PORT": [labels]} (PORT 0: a free port)."""
        stem = qh.LOGS / f"{name}-{os.getpid()}-{time.monotonic_ns()}"
        self.status_path = stem.with_suffix(".status")
        self.record = stem.with_suffix(".record")
        self.listen = listen
        self.wrap = list(wrap)
        self.proc: subprocess.Popen | None = None
        self.where: dict[str, str] = {}
        self._pings = 0

    def start(self) -> "DestSink":
        qh.LOGS.mkdir(parents=True, exist_ok=True)
        args = []
        for spec, labels in self.listen.items():
            args += ["--listen", f"{spec}={'+'.join(labels)}"]
        self.proc = subprocess.Popen(
            [*self.wrap, sys.executable, str(self.PROGRAM), "--status", str(self.status_path),
             "--record", str(self.record), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        line = self.proc.stdout.readline()
        try:
            self.where = json.loads(line)
        except ValueError:
            self.stop()
            raise RuntimeError(f"dest_sink did not start: {line!r}")
        return self

    def port(self, spec: str) -> int:
        return int(self.where[spec].rpartition(":")[2])

    def name(self, spec: str) -> str:
        return self.where[spec]

    def command(self, text: str) -> None:
        """Send a command and wait until the sink has carried it out."""
        self._pings += 1
        self.proc.stdin.write(f"{text}\nping {self._pings}\n".encode())
        self.proc.stdin.flush()
        qh.wait_for(lambda: self.status().get("pong") == self._pings, 30)
        assert self.status().get("pong") == self._pings, f"dest_sink did not do {text!r}"

    def sync(self) -> None:
        """Make the status file current (it is also rewritten ten times a second)."""
        self.command("sync")

    def status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def listener(self, spec: str) -> dict:
        return self.status().get("listeners", {}).get(self.where[spec], {})

    def label(self, label: str) -> dict:
        return self.status().get("labels", {}).get(label, {"open": 0, "peak": 0, "held": 0})

    def deliveries(self) -> list[tuple[str, str]]:
        return qh.recorded_deliveries(self.record)

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.proc = None


class NetNs:
    """A network namespace with its own loopback and DNS.

    records: {"mx": [(domain, host, pref)], "a": [(host, address)]}, or None:
    no DNS. addresses: more addresses for its loopback ("2001:db8:1::1/64")."""

    def __init__(self, records: dict | None, addresses=()):
        self.name = f"qt-dest-{os.getpid()}-{time.monotonic_ns() % 1000000}"
        self.etc = Path("/etc/netns") / self.name
        self.records = records
        self.addresses = list(addresses)
        self.dnsmasq: subprocess.Popen | None = None
        self.log = qh.LOGS / f"{self.name}.dnsmasq.log"
        self.made = False

    @property
    def wrap(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def start(self) -> "NetNs":
        if self.records is not None and shutil.which("dnsmasq") is None:
            raise AssertionError("dnsmasq is not installed (Debian package dnsmasq-base)")
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.made = True
        subprocess.run([*self.wrap, "ip", "link", "set", "lo", "up"], check=True)
        for address in self.addresses:  # nodad: usable at once
            subprocess.run([*self.wrap, "ip", "addr", "add", address, "dev", "lo", "nodad"], check=True)
        if self.records is None:
            return self
        self.etc.mkdir(parents=True)
        (self.etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")
        args = []
        for domain, host, pref in self.records.get("mx", []):
            args.append(f"--mx-host={domain},{host},{pref}")
        for host, address in self.records.get("a", []):
            args.append(f"--host-record={host},{address}")
        qh.LOGS.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log, "wb")
        self.dnsmasq = subprocess.Popen(
            [*self.wrap, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
             "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53", "--user=root",
             "--pid-file=", "--log-facility=-", "--local=/test/", "--domain-needed", *args],
            stdout=self._log, stderr=self._log, start_new_session=True)
        # dnsmasq answers: the first MX record resolves
        probe = self.records.get("mx", [("localhost.test", "", 0)])[0][0]
        ok = qh.wait_for(lambda: self._resolves(probe), 20, 0.2)
        if not ok:
            self.stop()
            raise AssertionError(f"dnsmasq did not answer in {self.name}: {self.log.read_text()[-2000:]}")
        return self

    def _resolves(self, domain: str) -> bool:
        return self.dnsmasq.poll() is None and self._query(domain)

    def _query(self, domain: str) -> bool:
        dnsmxip = qh.TREE / "dnsmxip"
        r = subprocess.run([*self.wrap, str(dnsmxip), domain], capture_output=True, text=True, timeout=10)
        return r.returncode == 0 and r.stdout.strip() != ""

    def stop(self) -> None:
        if self.dnsmasq is not None:
            try:
                self.dnsmasq.terminate()
                self.dnsmasq.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.dnsmasq.kill()
                self.dnsmasq.wait(timeout=5)
            self._log.close()
            self.dnsmasq = None
        if self.made:
            # anything still running inside (a test that failed early)
            r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", self.name], check=False)
            self.made = False
        shutil.rmtree(self.etc, ignore_errors=True)


def routes(control: qh.Control, table: dict[str, str]) -> None:
    """control/smtproutes: each domain to one listener ("ADDR:PORT")."""
    control.write("smtproutes", "".join(f"{d}:{where}\n" for d, where in table.items()))


def destinations_tool(*args, home: Path = qh.HOME, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(home / "bin/qmail-destinations"), *args], capture_output=True, text=True,
                          timeout=timeout)


def message(ident: str, rcpts: list[str], sender: str = "sender@test.example"):
    return (sender, rcpts, f"From: {sender}\nSubject: {ident}\nX-Sink-Id: {ident}\n\nbody {ident}\n".encode())
