#!/usr/bin/python3
"""tcp6server.py: an IPv6 ucspi-tcp server for tests, as far as qmail-smtpd
sees one (Debian's tcpserver, ucspi-tcp 0.88, has no IPv6).

usage: tcp6server.py UID GID HOST PROGRAM [ARG ...]

Listens on [HOST] and a free port, prints the port on a line of its own,
then for each connection forks a child that takes the connection as its
descriptors 0 and 1, sets what an IPv6 tcpserver run with -H -R -l 0 sets
(PROTO=TCP6, TCPLOCALIP, TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP,
TCPREMOTEPORT; addresses in their compressed form, as ucspi-tcp6 writes
them), drops to GID and UID and execs PROGRAM with the rest of its own
environment. Its children are in its process group; it reaps them, and ends
on SIGTERM.
"""

import os
import signal
import socket
import sys


def reap(signum, frame):
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def serve(conn: socket.socket, listener: socket.socket, uid: int, gid: int, argv: list[str]) -> None:
    """In the child: never returns."""
    try:
        listener.close()
        local, remote = conn.getsockname(), conn.getpeername()
        env = dict(os.environ, PROTO="TCP6", TCPLOCALIP=local[0], TCPLOCALPORT=str(local[1]),
                   TCPLOCALHOST="0", TCPREMOTEIP=remote[0], TCPREMOTEPORT=str(remote[1]))
        for name in ("TCPREMOTEHOST", "TCPREMOTEINFO"):
            env.pop(name, None)
        os.dup2(conn.fileno(), 0)
        os.dup2(conn.fileno(), 1)
        conn.close()
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
        os.execve(argv[0], argv, env)
    except BaseException as e:  # noqa: BLE001 -- the child must never go back to the loop
        print(f"tcp6server: {argv[0]}: {e}", file=sys.stderr, flush=True)
    os._exit(111)


def main(args: list[str]) -> int:
    if len(args) < 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 100
    uid, gid, host, argv = int(args[0]), int(args[1]), args[2], args[3:]
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    listener.bind((host, 0))
    listener.listen(64)
    signal.signal(signal.SIGCHLD, reap)
    print(listener.getsockname()[1], flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing more for the pipe
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            serve(conn, listener, uid, gid, argv)
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
