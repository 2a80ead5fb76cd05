"""Shared pieces of the STARTTLS/SMTPS/AUTH tests.

- a certificate for mx.test.example made once per run with the openssl CLI;
- control/servercert.pem installed the way an admin would (0640, readable by
  qmail-smtpd's group);
- tests/smtp/checkpassword-test, the checkpassword program (run from its copy
  in the throwaway installation's directory), and a directory qmail-smtpd's
  user can write its records to;
- STARTTLS on a raw qmail_harness.Session, and TLS at connect (SMTPS).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import qmail_harness as qh

CHECKPASSWORD = qh.runnable(Path(__file__).resolve().parent / "checkpassword-test")
WORK = qh.WORK / "tlsauth"
HOSTNAME = "mx.test.example"
USERS = {"alice": "correct horse", "bob@other.example": "s3cret"}

_cert: tuple[bytes, Path] | None = None


def certificate() -> tuple[bytes, Path]:
    """(servercert.pem contents: chain then key, path of the CA file to trust)."""
    global _cert
    if _cert is None:
        d = WORK / "cert"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2",
                        "-subj", f"/CN={HOSTNAME}", "-addext", f"subjectAltName=DNS:{HOSTNAME}"],
                       check=True, capture_output=True, timeout=60)
        _cert = ((d / "cert.pem").read_bytes() + (d / "key.pem").read_bytes(), d / "cert.pem")
    return _cert


def install_cert(control: qh.Control, pem: bytes | None = None) -> Path:
    """control/servercert.pem, owner root, group of qmail-smtpd's user, 0640."""
    path = control.write("servercert.pem", pem if pem is not None else certificate()[0], mode=0o640)
    os.chown(path, 0, qh.uid_gid()[1])
    return path


def record_dir(name: str) -> Path:
    """A fresh directory qmail-smtpd and its children may write to."""
    d = WORK / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    os.chmod(d, 0o777)
    return d


def queue_env_recorder():
    """(a QMAILQUEUE program that records its environment and then runs
    qmail-queue, a function returning the environments recorded so far)."""
    d = record_dir("queue-env")
    script = d / "record-and-queue"
    script.write_text(f'#!/bin/sh\nenv > "{d}/env.$$"\nexec {qh.HOME}/bin/qmail-queue\n')
    script.chmod(0o755)

    def environments() -> list[dict]:
        return [dict(line.split("=", 1) for line in p.read_text().splitlines() if "=" in line)
                for p in sorted(d.glob("env.*"))]
    return str(script), environments


def auth_args(subprogram: str = "/bin/true") -> list[str]:
    """qmail-smtpd's command line for AUTH, as in qmail-popup's style."""
    return [str(CHECKPASSWORD), subprogram]


def client_context(**kw) -> ssl.SSLContext:
    """A client that verifies our certificate and host name."""
    ctx = ssl.create_default_context(cafile=str(certificate()[1]))
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def connect(server: qh.SmtpServer, timeout: float = 60) -> qh.Session:
    """A plain session, greeting read."""
    s = qh.Session(server.connect(timeout=timeout))
    greeting = s.reply()
    assert greeting.startswith(b"220 "), greeting
    return s


def starttls(s: qh.Session, ctx: ssl.SSLContext | None = None) -> qh.Session:
    """STARTTLS on a session; returns the session over TLS."""
    reply = s.cmd("STARTTLS")
    assert reply == b"220 2.0.0 ready to start TLS\r\n", reply
    assert s.buf == b"", "the server said more than its 220"
    tls = (ctx or client_context()).wrap_socket(s.sock, server_hostname=HOSTNAME)
    return qh.Session(tls)


def starttls_at(server: qh.SmtpServer, ctx: ssl.SSLContext, timeout: float = 30) -> qh.Session:
    """A session to `server` that said EHLO, STARTTLS and EHLO again."""
    s = connect(server, timeout=timeout)
    s.cmd("EHLO client.example")
    t = starttls(s, ctx)
    t.cmd("EHLO client.example")
    return t


def smtps_connect(server: qh.SmtpServer, ctx: ssl.SSLContext | None = None) -> qh.Session:
    """TLS from the first byte (SMTPS)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    return qh.Session((ctx or client_context()).wrap_socket(sock, server_hostname=HOSTNAME))


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ehlo_keywords(reply: bytes) -> list[str]:
    return [line[4:].decode() for line in reply.splitlines()[1:]]
