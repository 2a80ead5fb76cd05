"""redis_harness: real Redis servers, clusters and Sentinels for SMTP tests.

Each runs on 127.0.0.1 and ports the kernel says are free (never 6379, where a
system Redis may listen), in a directory under build/test/redis, and is
stopped when its `with` block ends - also when the test fails. Nothing is
persisted (--save "" --appendonly no) unless asked.

- RedisServer: one redis-server; cmd() speaks RESP to it; pause()/resume()
  (SIGSTOP/SIGCONT) make it stall, stop() makes it go away.
- RedisCluster: three primaries made into a cluster with
  `redis-cli --cluster create`.
- SentinelGroup: a primary, a replica and three redis-sentinel processes
  watching them (quorum 2).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import qmail_harness as qh
import relaylimits as rl
import tlsauth as ta

BASE = qh.TOP / "build/test/redis"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue


def _encode(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RespError(Exception):
    pass


def _read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise ConnectionError(f"bad reply {line!r}")


def resp(port: int, *args, password: str | None = None, timeout: float = 5):
    """One command on a connection of its own; an error reply is returned as
    a RespError (not raised)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        if password:
            s.sendall(_encode(["AUTH", password]))
            _read(f)
        s.sendall(_encode(args))
        return _read(f)


class RedisServer:
    def __init__(self, *extra: str, name: str = "redis", port: int | None = None,
                 password: str | None = None):
        self.port = port or free_port()
        self.password = password
        self.extra = list(extra)
        if password:
            self.extra += ["--requirepass", password, "--masterauth", password]
        self.dir = BASE / f"{name}-{os.getpid()}-{self.port}"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> "RedisServer":
        self.dir.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log"),
                "--protected-mode", "no", *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        if not qh.wait_for(self._answers, 10):
            self.stop()
            raise RuntimeError(f"redis-server on {self.port} did not start: {self.log()[-2000:]}")
        return self

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {self.log()[-2000:]}")
        try:
            r = resp(self.port, "PING", password=self.password, timeout=1)
            return r == "PONG"
        except OSError:
            return False

    def cmd(self, *args):
        return resp(self.port, *args, password=self.password)

    def log(self) -> str:
        try:
            return (self.dir / "redis.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: gone at once, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.terminate()
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def keys(self) -> list[str]:
        return sorted(self.cmd("KEYS", "*") or [])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """Three primaries, no replicas."""

    def __init__(self, size: int = 3):
        self.nodes = [RedisServer("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                  "--cluster-node-timeout", "3000", name="cluster", port=free_cluster_port())
                      for _ in range(size)]

    @property
    def url(self) -> str:
        # two seeds: the third node is found through the slot map
        return "redis-cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])

    def start(self) -> "RedisCluster":
        try:
            for n in self.nodes:
                n.start()
            r = subprocess.run(["redis-cli", "--cluster", "create",
                                *[f"127.0.0.1:{n.port}" for n in self.nodes],
                                "--cluster-replicas", "0", "--cluster-yes"],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create: {r.stdout}{r.stderr}")
            if not qh.wait_for(lambda: all("cluster_state:ok" in n.cmd("CLUSTER", "INFO") for n in self.nodes),
                               30):
                raise RuntimeError("the cluster never reached cluster_state:ok")
        except BaseException:
            self.stop()
            raise
        return self

    def owner(self, key: str) -> RedisServer:
        for n in self.nodes:
            if not isinstance(n.cmd("EXISTS", key), RespError):
                return n
        raise AssertionError(f"no node owns {key}")

    def keys(self) -> list[str]:
        return sorted(k for n in self.nodes for k in (n.cmd("KEYS", "*") or []))

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
            shutil.rmtree(n.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SentinelGroup:
    """A primary, a replica, and three Sentinels watching them as `master`."""

    def __init__(self, name: str = "qmail", down_after_ms: int = 1000, failover_timeout_ms: int = 5000):
        self.name = name
        self.primary = RedisServer(name="primary")
        self.replica = RedisServer(name="replica")
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen] = []
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.dir = BASE / f"sentinel-{os.getpid()}-{self.sentinel_ports[0]}"

    @property
    def url(self) -> str:
        return "redis-sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{self.name}"

    def start(self) -> "SentinelGroup":
        try:
            self.primary.start()
            self.replica.extra += ["--replicaof", "127.0.0.1", str(self.primary.port)]
            self.replica.start()
            qh.wait_for(lambda: "master_link_status:up" in self.replica.cmd("INFO", "replication"), 20)
            self.dir.mkdir(parents=True, exist_ok=True)
            for i, port in enumerate(self.sentinel_ports):
                conf = self.dir / f"sentinel-{i}.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.dir}\n"
                    f"logfile {self.dir}/sentinel-{i}.log\n"
                    f"sentinel monitor {self.name} 127.0.0.1 {self.primary.port} 2\n"
                    f"sentinel down-after-milliseconds {self.name} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {self.name} {self.failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {self.name} 1\n")
                self.sentinels.append(subprocess.Popen(["redis-sentinel", str(conf)], stdout=subprocess.DEVNULL,
                                                       stderr=subprocess.DEVNULL, start_new_session=True))
            if not qh.wait_for(lambda: all(self.master_of(p) == ("127.0.0.1", self.primary.port)
                                           for p in self.sentinel_ports), 20):
                raise RuntimeError("the Sentinels do not agree on the primary")
        except BaseException:
            self.stop()
            raise
        return self

    def master_of(self, sentinel_port: int):
        try:
            r = resp(sentinel_port, "SENTINEL", "get-master-addr-by-name", self.name, timeout=1)
        except OSError:
            return None
        return (r[0], int(r[1])) if isinstance(r, list) else None

    def stop(self) -> None:
        for p in self.sentinels:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        self.sentinels = []
        for s in (self.primary, self.replica):
            s.stop()
            shutil.rmtree(s.dir, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def use_store(control: qh.Control, url: str, password: str | None = None) -> None:
    """control/throttlestore (and control/throttlestorepassword, 0400 owned
    by qmail-smtpd's user, as the man page says)."""
    control.write("throttlestore", url + "\n")
    if password is not None:
        p = control.write("throttlestorepassword", password + "\n", mode=0o400)
        os.chown(p, *qh.uid_gid())


# ---- two hosts sharing a store ----------------------------------------------


def two_servers(qmail, **kw):
    """Two qmail-smtpd servers standing for two hosts: one installation under
    two tcpservers (qmail compiles its home in, so a second home would be a
    second build; what makes hosts share budgets is only the store they name)."""
    return qmail.smtpd(name="host-a", **kw), qmail.smtpd(name="host-b", **kw)


def no_lmdb_store() -> bool:
    """No LMDB store was made in throttle/: nothing was shared through it."""
    return not [p for p in (qh.HOME / "throttle").iterdir() if p.name.startswith("boot-")]


def auth_plain_session(srv, user, password, timeout=60):
    """AUTH PLAIN without TLS (the servers run with FORCETLS=0): the cheapest
    authenticated session."""
    s = ta.connect(srv, timeout=timeout)
    assert s.cmd("EHLO client.example").startswith(b"250")
    reply = s.cmd("AUTH PLAIN " + ta.plain(user, password))
    assert reply.startswith(b"235 "), reply
    return s


def sessions_split_across(servers, sessions: int, rcpts_each: int = 5, user: str = "alice"):
    """`sessions` authenticated sessions of `user` at once, taking turns over
    `servers`, each relaying rcpts_each recipients: [(accepted, the reply to the message)] in
    session order (session i went to servers[i % len(servers)])."""
    start = threading.Barrier(sessions)
    with ThreadPoolExecutor(sessions) as pool:
        results = list(pool.map(
            lambda i: rl.relay_run(lambda: auth_plain_session(servers[i % len(servers)], user, ta.USERS[user]),
                                   rcpts_each, start),
            range(sessions)))
    assert [r for r in results if isinstance(r, str)] == []
    return results
