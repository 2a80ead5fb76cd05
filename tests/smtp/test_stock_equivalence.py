"""With no throttling configured, the patched qmail-smtpd answers exactly like
stock netqmail-1.06's, byte for byte, and queues the same messages."""

import re

import pytest

import qmail_harness as qh
from stock_corpus import SESSIONS

# What legitimately differs between two runs: the queue's timestamp and the
# process ids in "250 ok <time> qp <pid>", and pids and dates in Received:.
NORMALIZE = [
    (re.compile(rb"250 ok \d+ qp \d+"), b"250 ok TIME qp PID"),
    (re.compile(rb"\(qmail \d+ invoked"), b"(qmail PID invoked"),
    (re.compile(rb"; \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d -0000"), b"; DATE"),
]


def normalize(data: bytes) -> bytes:
    for pattern, repl in NORMALIZE:
        data = pattern.sub(repl, data)
    return data


def run_session(server: qh.SmtpServer, steps) -> bytes:
    s = qh.Session(server.connect())
    transcript = []
    try:
        for step in steps:
            kind = step[0]
            if kind == "cmd":
                transcript.append(s.cmd(step[1]))
            elif kind == "send":
                s.send(step[1])
            elif kind == "reply":
                transcript.append(s.reply())
            elif kind == "rest":
                transcript.append(s.rest())
            elif kind == "close":
                pass
            else:
                raise ValueError(kind)
    finally:
        s.close()
    return normalize(b"".join(transcript))


def test_the_two_servers_are_different_programs():
    # guards against comparing a binary with itself
    assert qh.STOCK_SMTPD.read_bytes() != qh.PATCHED_SMTPD.read_bytes()


def queued(q) -> list:
    # sorted by content: message numbers are inode numbers, which the file
    # system reuses in no particular order once many messages have passed
    return sorted((dict(m, body=normalize(m["body"])) for m in q.queue.messages()),
                  key=lambda m: (m["sender"] or "", m["rcpts"], m["body"]))


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_patched_answers_like_stock(qmail, name):
    session = SESSIONS[name]
    for fname, text in session.get("control", {}).items():
        qmail.control.write(fname, text)
    env = session.get("env", {})

    results = {}
    for label, start in (("stock", qmail.stock_smtpd), ("patched", qmail.smtpd)):
        qmail.queue.clear()
        server = start(env=env)
        transcript = run_session(server, session["steps"])
        results[label] = (transcript, queued(qmail))
        server.stop()

    stock_t, stock_q = results["stock"]
    patched_t, patched_q = results["patched"]
    assert stock_t, "the stock server said nothing: the corpus session is broken"
    assert patched_t == stock_t
    assert patched_q == stock_q
