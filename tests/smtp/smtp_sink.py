#!/usr/bin/python3
"""smtp_sink: an SMTP receiver on 127.0.0.1 that holds sessions open.

It stands in for thousands of slow remote servers: every session is accepted,
the message is read, and the final reply to DATA waits until the session may
go (see below). It counts the sessions open at once and records what it
accepted, one line per delivery: "<X-Sink-Id of the message> <recipient>",
written when "250" is sent, so a message delivered twice shows up twice.

    smtp_sink.py --record FILE --summary FILE [--status FILE] [--hold S]

The port is printed on the first line of stdout. A session is held after the
message, before the "250", for --hold seconds. SIGUSR1 releases the sessions
held at that moment (later ones are held again); SIGUSR2 releases them and
holds nobody from then on.
--status FILE is rewritten ten times a second with the live figures (JSON):
"open" and "held" sessions now, "peak" open at once, "peak_held" held at
once since the last SIGUSR1, "accepted" messages.
On SIGTERM or SIGINT the sink closes everything and writes a JSON summary:
{"peak": sessions open at once, "sessions": accepted, "accepted": messages,
 "first": time of the first session, "last": time of the last accepted
 message (time.monotonic() of this process, in seconds)}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
import time

IDLE_TIMEOUT = 300  # seconds a client may say nothing


async def smtp_session(reader, writer, accept, on_quit=lambda: None):
    """The server side of one SMTP session: greeting, commands, messages.
    `accept(ident, rcpts)` is awaited before each message's "250" (ident:
    its X-Sink-Id); `on_quit()` runs when QUIT arrives, before the reply
    (qmail-remote does not wait for it). Also used by dest_sink.py."""
    async def line() -> bytes:
        return await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)

    writer.write(b"220 sink.example ESMTP\r\n")
    rcpts: list[str] = []
    while True:
        cmd = await line()
        if not cmd:
            return
        verb = cmd[:4].upper()
        if verb in (b"HELO", b"EHLO", b"NOOP"):
            writer.write(b"250 sink.example\r\n")
        elif verb in (b"MAIL", b"RSET"):
            rcpts = []
            writer.write(b"250 ok\r\n")
        elif verb == b"RCPT":
            rcpts.append(cmd.decode(errors="replace").partition(":")[2].strip().strip("<>"))
            writer.write(b"250 ok\r\n")
        elif verb == b"DATA":
            writer.write(b"354 go ahead\r\n")
            await writer.drain()
            ident = "-"
            while True:
                data = await line()
                if not data or data in (b".\r\n", b".\n"):
                    break
                if data.lower().startswith(b"x-sink-id:"):
                    ident = data[10:].strip().decode(errors="replace")
            if not data:
                return
            await accept(ident, rcpts)
            writer.write(b"250 accepted\r\n")
            rcpts = []
        elif verb == b"QUIT":
            on_quit()
            writer.write(b"221 bye\r\n")
            await writer.drain()
            return
        else:
            writer.write(b"502 unimplemented\r\n")
        await writer.drain()


class Sink:
    def __init__(self, record, hold: float):
        self.record = record
        self.hold = hold
        self.open = 0
        self.peak = 0
        self.held = 0
        self.peak_held = 0
        self.sessions = 0
        self.accepted = 0
        self.first = None
        self.last = None
        self.released = asyncio.Event()
        if hold <= 0:
            self.released.set()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.open += 1
        self.sessions += 1
        if self.first is None:
            self.first = time.monotonic()
        if self.open > self.peak:
            self.peak = self.open
        try:
            await self.converse(reader, writer)
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def converse(self, reader, writer):
        await smtp_session(reader, writer, self.accept)

    async def accept(self, ident: str, rcpts: list[str]):
        await self.wait_release()
        for r in rcpts:
            self.record.write(f"{ident} {r}\n")
        self.record.flush()
        self.accepted += 1
        self.last = time.monotonic()

    async def wait_release(self):
        if self.released.is_set():
            return
        event = self.released
        self.held += 1
        self.peak_held = max(self.peak_held, self.held)
        try:
            await asyncio.wait_for(event.wait(), self.hold)
        except asyncio.TimeoutError:
            pass
        finally:
            self.held -= 1

    def release_held(self):
        """SIGUSR1: let the sessions held now go; hold the next ones again."""
        if self.released.is_set():
            return
        event, self.released = self.released, asyncio.Event()
        self.peak_held = 0
        event.set()

    def hold_nobody(self):
        """SIGUSR2: let every session go, now and from now on."""
        self.released.set()

    def status(self) -> dict:
        return {"open": self.open, "held": self.held, "peak": self.peak,
                "peak_held": self.peak_held, "accepted": self.accepted}

    def summary(self) -> dict:
        return {"peak": self.peak, "sessions": self.sessions, "accepted": self.accepted,
                "first": self.first, "last": self.last}


def write_atomically(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


async def main(args) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    record = open(args.record, "a", buffering=1 << 16)
    sink = Sink(record, args.hold)
    server = await asyncio.start_server(sink.session, "127.0.0.1", 0, backlog=4096,
                                        limit=1 << 16)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, sink.release_held)
    loop.add_signal_handler(signal.SIGUSR2, sink.hold_nobody)
    while not stop.is_set():
        if args.status:
            write_atomically(args.status, json.dumps(sink.status()))
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
    server.close()
    record.flush()
    with open(args.summary, "w") as f:
        json.dump(sink.summary(), f)
    record.close()
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--status")
    ap.add_argument("--hold", type=float, default=0.0)
    sys.exit(asyncio.run(main(ap.parse_args())))
