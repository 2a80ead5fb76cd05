"""mx: and ip: lines of control/concurrencydomains with real MX records.

The test makes a network namespace of its own: loopback, dnsmasq serving the
domains' MX and A records, and a resolv.conf that points there (ip netns
exec mounts it over /etc/resolv.conf). qmail-send, qmail-rspawn and
qmail-remote run inside it, and so do the SMTP listeners on port 25 of the
mail exchangers' loopback addresses; qmail-remote resolves the MX records
itself, as qmailr, as it always does. qmail-send learns each domain's route
from its first finished delivery, then counts it under its mx:/ip: line."""

from __future__ import annotations

import collections

import destinations as dh
import qmail_harness as qh

LONG = 300

# domain -> (MX host, its address)
MX = {
    "d1.test": ("mx1.hoster.test", "127.0.2.1"),
    "d2.test": ("mx2.hoster.test", "127.0.2.2"),
    "d3.test": ("mx.d3.test", "127.0.3.1"),
    "d4.test": ("mx.d4.test", "127.0.3.2"),
    "free.test": ("mx.free.test", "127.0.4.1"),
}
LABEL = {"127.0.2.1": "hoster", "127.0.2.2": "hoster", "127.0.3.1": "block", "127.0.3.2": "block",
         "127.0.4.1": "free"}


def setup_world(qmail):
    ns = qmail.netns({"mx": [(d, host, 10) for d, (host, _) in MX.items()],
                      "a": [(host, addr) for host, addr in MX.values()]})
    sink = qmail.dest_sink({f"{addr}:25": [LABEL[addr]] for _, addr in MX.values()}, wrap=ns.wrap)
    return ns, sink


def deliveries_of(n: int, domains, tag: str):
    return [(f"{tag}-{d}-{i}", [f"u{i}@{d}"]) for d in domains for i in range(n)]


def test_domains_are_grouped_by_mx_host_and_address_once_learned(qmail):
    ns, sink = setup_world(qmail)
    qmail.control.write("concurrencyremote", "100\n")
    qmail.control.write("concurrencydomains", "mx:.hoster.test 3\nip:127.0.3.0/24 2\n* 1\n")
    send = qmail.send(wrap=ns.wrap)
    # learning: one delivery per domain teaches qmail-send where it goes
    sink.command("pass")
    first = deliveries_of(1, MX, "learn")
    qh.queue_messages(dh.message(i, r) for i, r in first)
    send.wait_until(lambda: send.successes() >= len(first), LONG, "the first delivery of each domain")
    r = dh.destinations_tool()
    assert r.returncode == 0, r.stderr
    table = {line.split()[0]: line.split() for line in r.stdout.splitlines()
             if line.split() and line.split()[0] in MX}
    assert table["d1.test"][1] == "mx:.hoster.test" and "mx1.hoster.test" in table["d1.test"]
    assert "127.0.2.1," in table["d1.test"]
    assert table["d2.test"][1] == "mx:.hoster.test"
    assert table["d3.test"][1] == "ip:127.0.3.0/24" and "127.0.3.1," in table["d3.test"]
    assert table["d4.test"][1] == "ip:127.0.3.0/24"
    assert table["free.test"][1] == "free.test"  # its own budget from "*"

    # now the bulk: the groups hold exactly, seen by their servers
    sink.command("hold")
    sink.command("reset")
    bulk = deliveries_of(8, MX, "bulk")
    qh.queue_messages(dh.message(i, r) for i, r in bulk)
    caps = {"hoster": 3, "block": 2, "free": 1}
    reached = lambda: all(sink.label(k)["held"] == v for k, v in caps.items())
    send.wait_until(reached, LONG, f"held at the caps {caps}")
    for _ in range(3):
        sink.command("release")
        send.wait_until(reached, LONG, "held at the caps again")
    sink.command("pass")
    total = len(first) + len(bulk)
    send.wait_until(lambda: send.successes() >= total, LONG, "every delivery")
    send.wait_until(lambda: not qmail.queue.message_files(), LONG, "an empty queue")
    send.stop()
    for k, v in caps.items():
        assert sink.label(k)["peak"] == v, (k, sink.label(k))
    got = collections.Counter(sink.deliveries())
    want = collections.Counter((i, r[0]) for i, r in first + bulk)
    assert got == want
    log = send.log()
    for bad in ("deferral", "failure", "alert", "warning"):
        assert bad not in log, [line for line in log.splitlines() if bad in line][:5]
    assert "destination mx:.hoster.test: holding recipients: at its limit of 3 deliveries at once" in log
    assert "destination ip:127.0.3.0/24: holding recipients: at its limit of 2 deliveries at once" in log


def test_without_a_default_a_new_domain_goes_one_at_a_time_until_learned(qmail):
    ns, sink = setup_world(qmail)
    qmail.control.write("concurrencydomains", "mx:.hoster.test 5\n")
    qh.queue_messages(dh.message(i, r) for i, r in deliveries_of(6, ["d1.test", "free.test"], "new"))
    send = qmail.send(wrap=ns.wrap)
    # before any delivery finished, each domain has one session, no more
    send.wait_until(lambda: sink.label("hoster")["held"] == 1 and sink.label("free")["held"] == 1, LONG,
                    "one session per unlearned domain")
    sink.command("release")
    # learned: d1.test joins mx:.hoster.test (5 at once), free.test is unlimited
    send.wait_until(lambda: sink.label("hoster")["held"] == 5 and sink.label("free")["held"] == 5, LONG,
                    "the rest at once")
    assert sink.label("hoster")["peak"] == 5 and sink.label("free")["peak"] == 5
    sink.command("pass")
    send.wait_until(lambda: send.successes() >= 12, LONG, "every delivery")
    send.stop()
    assert "destination d1.test: holding recipients: learning its route, one delivery at a time" in send.log()


def test_explain_which_line_applies(qmail):
    qmail.control.write("concurrencydomains",
                        "* 4\nexample.com 10\n.example.net 3\nmx:.google.com 20 rate=100/1h\nip:192.0.2.0/24 7\n")
    cases = {
        ("example.com",): "example.com: by its name: line 2: example.com (domain) limit 10",
        ("www.example.net",): "www.example.net: by its name: line 3: .example.net (suffix) limit 3",
        ("example.org", "alt1.aspmx.l.google.com"):
            "example.org: by its route: line 4: mx:.google.com (mx suffix) limit 20 rate 100/1h",
        ("example.org", "mx.other.org", "192.0.2.9"): "example.org: by its route: line 5: ip:192.0.2.0/24 (ip) limit 7",
        ("example.org", "mx.other.org", "198.51.100.1"):
            "example.org: a budget of its own from line 1: * (default) limit 4",
    }
    for args, want in cases.items():
        r = dh.destinations_tool("-x", *args)
        assert r.returncode == 0, r.stderr
        assert want in r.stdout, (args, r.stdout)
    # the file checked as qmail-send reads it
    r = dh.destinations_tool("-c")
    assert r.returncode == 0
    assert "control/concurrencydomains:4: mx:.google.com (mx suffix) limit 20 rate 100/1h pause 5m after 5 failures" \
        in r.stdout
    qmail.control.write("concurrencydomains", "ok.example 1\nbad..example 2\nip:192.0.2.1/24 3\n")
    r = dh.destinations_tool("-c")
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        "control/concurrencydomains:2: 'bad..example' is not a valid domain (letters, digits, '-' and '_' in "
        "dot-separated labels)",
        "control/concurrencydomains:3: 'ip:192.0.2.1/24' has host bits set; the block is ip:192.0.2.0/24",
    ]
    # qmail-send not running: said in one line
    r = dh.destinations_tool()
    assert r.returncode == 1 and "qmail-send is not running" in r.stderr
