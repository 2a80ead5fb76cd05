"""A full session driven by swaks, a widely used SMTP test client."""

import subprocess


def test_swaks_delivers_into_the_queue(qmail):
    srv = qmail.smtpd(env={"RELAYCLIENT": ""})
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port),
                        "--from", "alice@client.example", "--to", "bob@far.example,carol@test.example",
                        "--helo", "client.example", "--header", "Subject: swaks", "--body", "via swaks",
                        "--timeout", "10"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<-  250 ok" in r.stdout
    msgs = qmail.queue.messages()
    assert len(msgs) == 1
    assert msgs[0]["sender"] == "alice@client.example"
    assert msgs[0]["rcpts"] == ["bob@far.example", "carol@test.example"]
    assert b"via swaks" in msgs[0]["body"]
