#!/usr/bin/python3
"""dest_sink: SMTP receivers standing in for several remote destinations.

Each listener (ADDRESS:PORT) is one remote server; labels group listeners
into the destinations a test checks (a domain, an MX host group, an address
block). The sink counts, per listener and per label, the sessions open at
once, seen from the server: from the accepted connection until the client's
QUIT or its close, whichever comes first, in the order the kernel received
them: before a new session is counted, every open session whose QUIT or
close has already arrived (read or still in the socket) is counted as gone,
so a busy event loop that runs the new accept first cannot show an overlap
the server never had. It records every delivery as
"<X-Sink-Id> <recipient>" so that a delivery made twice shows up twice.

    dest_sink.py --status FILE --record FILE --listen ADDR:PORT=LABEL[+LABEL...] ...

PORT 0 picks a free port. The first line on stdout is JSON mapping each
--listen ADDR:PORT as given to the ADDR:PORT listened on.

Commands, one per line on stdin:
    hold             hold every session after its message, before the 250,
                     until "release" (the default)
    release          let the sessions held now go (later ones are held again)
    pass             hold nobody from now on
    holdfor S        hold every session S seconds (a slow server), then answer
    passing L yes|no listener L never holds (yes) or holds like the others (no)
    mode LISTENER M  M = normal (answer), 421 (greet with 421 and close),
                     refuse (stop listening: connections are refused)
    reset            peaks start again from what is open now
    ping N           write N as "pong" into the status (the command was read)

--status FILE is rewritten ten times a second and after each command with
JSON: {"pong": N, "listeners": {L: {"open", "peak", "held", "sessions",
"accepted", "greeted421", "starts": [monotonic times of accepted sessions]}},
"labels": {label: {"open", "peak", "held"}}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_sink import IDLE_TIMEOUT, smtp_session  # noqa: E402


class Counter:
    def __init__(self):
        self.open = 0
        self.peak = 0
        self.held = 0

    def up(self):
        self.open += 1
        self.peak = max(self.peak, self.open)

    def down(self):
        self.open -= 1


QUIT_LINE = re.compile(rb"(?:^|\n)QUIT\r?\n", re.IGNORECASE)


def departed(reader, writer) -> bool:
    if getattr(reader, "_eof", False) or reader.at_eof() or QUIT_LINE.search(bytes(getattr(reader, "_buffer", b""))):
        return True
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    try:
        with socket.socket(fileno=os.dup(sock.fileno())) as s:
            pending = s.recv(1 << 16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:  # reset, or already closed
        return True
    return pending == b"" or QUIT_LINE.search(pending) is not None


class Listener:
    def __init__(self, sink: "Sink", addr: str, port: int, labels: list[str]):
        self.sink = sink
        self.addr = addr
        self.port = port
        self.labels = labels
        self.mode = "normal"
        self.passing = False  # never hold this listener's sessions
        self.server: asyncio.AbstractServer | None = None
        self.count = Counter()
        self.sessions = 0
        self.accepted = 0
        self.greeted421 = 0
        self.starts: list[float] = []

    @property
    def name(self) -> str:
        return f"{self.addr}:{self.port}"

    async def listen(self):
        self.server = await asyncio.start_server(self.session, self.addr, self.port, backlog=4096,
                                                 reuse_address=True, limit=1 << 16)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop_listening(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def counters(self):
        return [self.count] + [self.sink.labels[l] for l in self.labels]

    async def session(self, reader, writer):
        self.sessions += 1
        self.starts.append(time.monotonic())
        self.sink.settle_departures()
        for c in self.counters():
            c.up()
        state = {"open": True}

        def close():
            if state["open"]:
                state["open"] = False
                self.sink.open_sessions.pop(key, None)
                for c in self.counters():
                    c.down()

        key = id(state)
        self.sink.open_sessions[key] = (reader, writer, close)

        try:
            if self.mode == "421":
                self.greeted421 += 1
                writer.write(b"421 sink.example busy, try later\r\n")
                await writer.drain()
                return
            await self.converse(reader, writer, close)
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            close()
            writer.close()

    async def converse(self, reader, writer, close):
        async def accept(ident: str, rcpts: list[str]):
            await self.sink.wait_release(self)
            for r in rcpts:
                self.sink.record.write(f"{ident} {r}\n")
            self.sink.record.flush()
            self.accepted += 1

        await smtp_session(reader, writer, accept, on_quit=close)  # the client is done at QUIT


class Sink:
    def __init__(self, record, status_path):
        self.record = record
        self.status_path = status_path
        self.listeners: dict[str, Listener] = {}
        self.labels: dict[str, Counter] = {}
        self.holding = True
        self.hold_seconds = 0.0  # > 0: hold for this long instead of until released
        self.released = asyncio.Event()
        self.pong = 0
        self.open_sessions: dict[int, tuple] = {}  # counted sessions: (reader, writer, close)

    def settle_departures(self):
        """Count as gone every open session whose client has already sent
        QUIT or closed, as far as the kernel knows: in the reader's buffer
        or still unread in the socket (peeked, never consumed)."""
        for reader, writer, close in list(self.open_sessions.values()):
            if departed(reader, writer):
                close()

    async def wait_release(self, listener: Listener):
        if not self.holding or listener.passing:
            return
        event = self.released
        for c in listener.counters():
            c.held += 1
        if self.hold_seconds <= 0:
            self.write_status()
        try:
            await asyncio.wait_for(event.wait(), self.hold_seconds if self.hold_seconds > 0 else IDLE_TIMEOUT)
        except asyncio.TimeoutError:
            pass
        finally:
            for c in listener.counters():
                c.held -= 1

    def release(self):
        event, self.released = self.released, asyncio.Event()
        event.set()

    async def command(self, line: str):
        words = line.split()
        if not words:
            return
        if words[0] == "hold":
            self.holding = True
        elif words[0] == "release":
            self.release()
        elif words[0] == "pass":
            self.holding = False
            self.release()
        elif words[0] == "holdfor" and len(words) == 2:
            self.holding = True
            self.hold_seconds = float(words[1])
        elif words[0] == "mode" and len(words) == 3:
            lst = self.listeners[words[1]]
            if words[2] == "refuse":
                await lst.stop_listening()
            else:
                if lst.server is None:
                    await lst.listen()
            lst.mode = words[2]
        elif words[0] == "passing" and len(words) == 3:
            self.listeners[words[1]].passing = words[2] == "yes"
        elif words[0] == "reset":
            for lst in self.listeners.values():
                lst.count.peak = lst.count.open
            for c in self.labels.values():
                c.peak = c.open
        elif words[0] == "ping" and len(words) == 2:
            self.pong = int(words[1])
        self.write_status()

    def status(self) -> dict:
        return {
            "pong": self.pong,
            "listeners": {n: {"open": l.count.open, "peak": l.count.peak, "held": l.count.held,
                              "sessions": l.sessions, "accepted": l.accepted,
                              "greeted421": l.greeted421, "starts": l.starts}
                          for n, l in self.listeners.items()},
            "labels": {n: {"open": c.open, "peak": c.peak, "held": c.held} for n, c in self.labels.items()},
        }

    def write_status(self):
        tmp = self.status_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.status(), f)
        os.replace(tmp, self.status_path)


async def main(args) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    record = open(args.record, "a", buffering=1 << 16)
    sink = Sink(record, args.status)
    mapping = {}
    for spec in args.listen:
        where, _, labels = spec.partition("=")
        addr, _, port = where.rpartition(":")
        lst = Listener(sink, addr, int(port), [l for l in labels.split("+") if l])
        for l in lst.labels:
            sink.labels.setdefault(l, Counter())
        await lst.listen()
        sink.listeners[lst.name] = lst
        mapping[where] = lst.name
    sink.write_status()
    print(json.dumps(mapping), flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def commands():
        while True:
            line = await reader.readline()
            if not line:
                return
            await sink.command(line.decode())

    cmd_task = asyncio.create_task(commands())
    while not stop.is_set():
        sink.write_status()
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
    cmd_task.cancel()
    for lst in sink.listeners.values():
        await lst.stop_listening()
    sink.write_status()
    record.close()
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--status", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--listen", action="append", required=True)
    sys.exit(asyncio.run(main(ap.parse_args())))
