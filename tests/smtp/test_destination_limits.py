"""Per-destination remote concurrency (control/concurrencydomains), end to
end: the installed qmail-send, qmail-rspawn and qmail-remote deliver to
dest_sink listeners that count, as the receiving servers see them, the
sessions open at once per destination. control/smtproutes sends each domain
to a listener of its own; test_destination_routes.py covers mx: and ip:
lines with real MX records.

The sink holds every session after its message until the test releases it,
so each check waits for the state it needs; timeouts only bound a fault."""

from __future__ import annotations

import collections
import signal
import time

import pytest

import destinations as dh
import qmail_harness as qh

LONG = 300  # seconds: only a fault takes this long (the machines are shared and slow)


def listeners_for(qmail, domains: list[str], labels: dict[str, list[str]] | None = None) -> dh.DestSink:
    """One listener per domain (127.0.0.2, .3, ... on a free port), each
    domain routed to its own by smtproutes. A listener counts under its
    domain's name and under the extra labels given for that domain."""
    specs = {f"127.0.0.{k + 2}:0": [d, *(labels or {}).get(d, [])] for k, d in enumerate(domains)}
    sink = qmail.dest_sink(specs)
    dh.routes(qmail.control, {d: sink.name(f"127.0.0.{k + 2}:0") for k, d in enumerate(domains)})
    return sink


def queue(messages) -> list[tuple[str, str]]:
    """Queue (ident, [rcpts]) messages; returns the deliveries they make."""
    messages = list(messages)
    qh.queue_messages(dh.message(ident, rcpts) for ident, rcpts in messages)
    return [(ident, r) for ident, rcpts in messages for r in rcpts]


def one_each(domain: str, n: int, tag: str = "") -> list[tuple[str, list[str]]]:
    return [(f"{tag}{domain}-{i}", [f"u{i}@{domain}"]) for i in range(n)]


def expect_exactly_once(sink: dh.DestSink, want: list[tuple[str, str]]):
    got = collections.Counter(sink.deliveries())
    want = collections.Counter(want)
    assert got == want, f"missing {list(want - got)[:5]} extra {list(got - want)[:5]}"


def lines_with(log: str, needle: str) -> list[str]:
    return [line for line in log.splitlines() if needle in line]


def no_trouble(log: str):
    for bad in ("deferral", "failure", "alert", "mangled", "warning"):
        assert not lines_with(log, bad), lines_with(log, bad)[:5]


def held_everywhere(sink: dh.DestSink, want: dict[str, int]) -> bool:
    return all(sink.label(label)["held"] == n for label, n in want.items())


def held_by(send) -> int:
    """Recipients the running qmail-send holds, as qmail-destinations says."""
    r = dh.destinations_tool()
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]  # qmail-send PID: N destination lines, H recipients held, ...
    return int(first.split(", ")[1].split()[0])


def drain(qmail, send, sink, total: int):
    sink.command("pass")
    send.wait_until(lambda: send.successes() >= total, LONG, f"{total} deliveries")
    send.wait_until(lambda: not qmail.queue.message_files(), LONG, "an empty queue")
    sink.sync()


def test_default_caps_each_domain_exactly_and_reaches_it(qmail):
    domains = ["d0.example", "d1.example", "d2.example"]
    sink = listeners_for(qmail, domains)
    qmail.control.write("concurrencyremote", "100\n")
    qmail.control.write("concurrencydomains", "# every domain on its own\n*   3\n")
    want = queue(m for d in domains for m in one_each(d, 12))
    send = qmail.send()
    # each domain reaches its cap: 3 sessions open at once, and no more
    send.wait_until(lambda: held_everywhere(sink, {d: 3 for d in domains}), LONG, "3 held per domain")
    for _ in range(3):  # release in rounds: every round refills to exactly 3
        sink.command("release")
        send.wait_until(lambda: held_everywhere(sink, {d: 3 for d in domains}), LONG, "3 held again")
    drain(qmail, send, sink, len(want))
    send.stop()
    for d in domains:
        assert sink.label(d)["peak"] == 3, (d, sink.label(d))
    expect_exactly_once(sink, want)
    log = send.log()
    no_trouble(log)
    # one line per destination when it starts holding, not one per recipient
    for d in domains:
        assert len(lines_with(log, f"destination {d}: holding recipients: at its limit of 3 deliveries")) == 1


def test_domain_suffix_and_group_lines(qmail):
    domains = ["a.example", "sub.example", "x.sub.example", "y.sub.example", "g1.example", "g2.example",
               "other.example"]
    labels = {"sub.example": ["subs"], "x.sub.example": ["subs"], "y.sub.example": ["subs"],
              "g1.example": ["group"], "g2.example": ["group"]}
    sink = listeners_for(qmail, domains, labels)
    qmail.control.write("concurrencyremote", "100\n")
    qmail.control.write("concurrencydomains",
                        "a.example 2\n.sub.example 3\ng1.example,g2.example 4\n* 1\n")
    want = queue(m for d in domains for m in one_each(d, 8))
    send = qmail.send()
    caps = {"a.example": 2, "subs": 3, "group": 4, "other.example": 1}
    send.wait_until(lambda: held_everywhere(sink, caps), LONG, f"held at the caps {caps}")
    for _ in range(2):
        sink.command("release")
        send.wait_until(lambda: held_everywhere(sink, caps), LONG, "held at the caps again")
    drain(qmail, send, sink, len(want))
    send.stop()
    for label, cap in caps.items():
        assert sink.label(label)["peak"] == cap, (label, sink.label(label))
    expect_exactly_once(sink, want)
    no_trouble(send.log())


def test_no_head_of_line_blocking(qmail):
    """2000 messages to a capped domain whose server holds every session are
    queued first; messages to 40 other domains and to a local user, queued
    after them, are all delivered while the capped domain stays held."""
    small = [f"s{k}.example" for k in range(40)]
    sink = qmail.dest_sink({"127.0.0.2:0": ["big"], "127.0.0.3:0": ["small"]})
    sink.command(f"passing {sink.name('127.0.0.3:0')} yes")  # the others' server answers at once
    dh.routes(qmail.control, {"big.example": sink.name("127.0.0.2:0"),
                              **{d: sink.name("127.0.0.3:0") for d in small}})
    maildir = qh.local_maildir()
    qmail.control.write("concurrencyremote", "60\n")
    qmail.control.write("concurrencydomains", "big.example 2\n")
    big = queue(one_each("big.example", 2000))
    send = qmail.send()
    send.wait_until(lambda: sink.label("big")["held"] == 2, LONG, "big.example at its cap")
    # every recipient of big.example is read and held before the others come
    send.wait_until(lambda: held_by(send) == 1998, LONG, "1998 recipients held")
    small_want = queue(m for d in small for m in one_each(d, 3, "small-"))
    qh.queue_messages([("sender@test.example", ["someone@local.example"], b"Subject: local\n\nlocal\n")])
    got_small = lambda: sum(1 for ident, _ in sink.deliveries() if ident.startswith("small-"))
    send.wait_until(lambda: got_small() >= len(small_want), LONG, "every small delivery")
    send.wait_until(lambda: list((maildir / "new").iterdir()), LONG, "the local delivery")
    assert sink.label("big")["peak"] == 2
    drain(qmail, send, sink, len(big) + len(small_want) + 1)
    send.stop()
    expect_exactly_once(sink, big + small_want)
    assert sink.label("big")["peak"] == 2
    log = send.log()
    no_trouble(log)
    assert len(lines_with(log, "holding recipients")) == 1


def test_rate_limits_starts_per_window(qmail):
    """rate=3/6s: three start at once, the next three only when the window
    lets them; the receiving server sees no four sessions within 6 s."""
    sink = listeners_for(qmail, ["r.example"])
    sink.command("pass")
    qmail.control.write("concurrencydomains", "r.example 10 rate=3/6s\n")
    want = queue(one_each("r.example", 9))
    send = qmail.send()
    send.wait_until(lambda: send.successes() >= 9, LONG, "9 deliveries")
    send.stop()
    sink.sync()
    starts = sorted(sink.listener("127.0.0.2:0")["starts"])
    assert len(starts) == 9
    # qmail-send spaces its starts by the window; the server sees them a
    # little later each (fork, exec, connect), so allow it a second of that
    for i in range(3, len(starts)):
        assert starts[i] - starts[i - 3] >= 5.0, [round(t - starts[0], 2) for t in starts]
    # and it did hold: without the rate all nine start within a second or two
    assert starts[-1] - starts[0] >= 10.0
    expect_exactly_once(sink, want)
    log = send.log()
    no_trouble(log)
    assert len(lines_with(log, "destination r.example: holding recipients: at its rate limit of 3/6s")) == 1


@pytest.mark.parametrize("fault", ["421", "refuse"])
def test_pause_after_failures_then_one_probe(qmail, fault):
    sink = listeners_for(qmail, ["p.example"])
    where = sink.name("127.0.0.2:0")
    sink.command("pass")
    sink.command(f"mode {where} {fault}")
    qmail.control.write("concurrencydomains", "p.example 2 failures=3 pause=8s\n")
    queue(one_each("p.example", 8))
    send = qmail.send()
    send.wait_until(lambda: "destination p.example: paused for 8s after 3 consecutive failures" in send.log(),
                    LONG, "the pause")
    log = send.log()
    if fault == "421":
        assert "last: Connected_to_127.0.0.2_but_greeting_failed./Remote_host_said:_421_sink.example_busy" in log
    else:
        assert "last: Sorry,_I_wasn't_able_to_establish_an_SMTP_connection." in log
    attempts_at_pause = log.count(": deferral: ")
    # during the pause nothing more is tried; then exactly one probe
    send.wait_until(lambda: "destination p.example: probing with one delivery" in send.log(), LONG, "the probe")
    send.wait_until(lambda: "the probe failed" in send.log(), LONG, "the probe's failure")
    log = send.log()
    assert log.count(": deferral: ") == attempts_at_pause + 1, lines_with(log, "deferral")
    assert attempts_at_pause <= 4  # 3 failures, and the one in flight when the third came
    # the server comes back: the next probe succeeds and the rest goes
    sink.command(f"mode {where} normal")
    send.wait_until(lambda: "destination p.example: resumed" in send.log(), LONG, "resumed")
    send.proc.send_signal(signal.SIGALRM)  # retry the deferred ones now, not in 400 s
    send.wait_until(lambda: send.successes() >= 8, LONG, "all 8 delivered")
    send.wait_until(lambda: not qmail.queue.message_files(), LONG, "an empty queue")
    send.stop()
    expect_exactly_once(sink, [(f"p.example-{i}", f"u{i}@p.example") for i in range(8)])
    # the held ones were never tried: deferrals are only the real attempts
    assert send.log().count(": deferral: ") == attempts_at_pause + 1


def test_hup_with_a_changed_and_a_broken_file(qmail):
    sink = listeners_for(qmail, ["h.example"])
    qmail.control.write("concurrencydomains", "h.example 1\n")
    want = queue(one_each("h.example", 12))
    send = qmail.send()
    send.wait_until(lambda: sink.label("h.example")["held"] == 1, LONG, "1 held")
    qmail.control.write("concurrencydomains", "h.example 3\n")
    send.hup()
    send.wait_until(lambda: sink.label("h.example")["held"] == 3, LONG, "3 held after the HUP")
    # a broken file: logged with its line number, the limit of 3 stays
    qmail.control.write("concurrencydomains", "# new\nh.example 3 speed=9\n")
    send.hup()
    send.wait_until(lambda: "has errors: the settings in force stay" in send.log(), LONG, "the warning")
    assert "warning: control/concurrencydomains:2: unknown setting 'speed=9'" in send.log()
    sink.command("reset")
    sink.command("release")
    send.wait_until(lambda: sink.label("h.example")["held"] == 3, LONG, "3 held again")
    assert sink.label("h.example")["peak"] == 3
    # the file removed: no limit at all, the other 6 start while 3 are held
    qmail.control.remove("concurrencydomains")
    send.hup()
    send.wait_until(lambda: sink.label("h.example")["held"] == 9, LONG, "9 held at once")
    drain(qmail, send, sink, 12)
    send.stop()
    expect_exactly_once(sink, want)
    assert len(lines_with(send.log(), "warning:")) == 2  # the bad line, and "settings in force stay"


def test_a_broken_file_at_start_holds_remote_mail_only(qmail):
    sink = listeners_for(qmail, ["b.example"])
    sink.command("pass")
    maildir = qh.local_maildir()
    qmail.control.write("concurrencydomains", "b.example ten\n")
    want = queue(one_each("b.example", 3))
    qh.queue_messages([("sender@test.example", ["someone@local.example"], b"Subject: local\n\nlocal\n")])
    send = qmail.send()
    send.wait_until(lambda: list((maildir / "new").iterdir()), LONG, "the local delivery")
    log = send.log()
    assert "warning: control/concurrencydomains:1: limit 'ten' must be a number 0 to 65000" in log
    assert "every remote delivery is held until it is fixed" in log
    send.wait_until(lambda: held_by(send) == 3, LONG, "3 held")
    assert sink.deliveries() == [] and "starting delivery" not in "".join(lines_with(log, "to remote"))
    qmail.control.write("concurrencydomains", "b.example 10\n")
    send.hup()
    send.wait_until(lambda: send.successes() >= 4, LONG, "the remote deliveries")
    send.stop()
    expect_exactly_once(sink, want)


def test_restart_mid_load_loses_nothing_and_delivers_once(qmail):
    domains = ["m0.example", "m1.example", "m2.example"]
    sink = listeners_for(qmail, domains)
    qmail.control.write("concurrencydomains", "* 2\n")
    want = queue(m for d in domains for m in one_each(d, 15))
    send = qmail.send()
    send.wait_until(lambda: held_everywhere(sink, {d: 2 for d in domains}), LONG, "2 held per domain")
    send.wait_until(lambda: held_by(send) == 39, LONG, "39 recipients held in qmail-send")
    # TERM: qmail-send waits for the 6 deliveries in flight; the held ones stay queued
    send.proc.send_signal(signal.SIGTERM)
    sink.command("release")
    send.proc.wait(timeout=LONG)
    assert send.log().count(": success: ") == 6
    send.stop()
    send2 = qmail.send()
    drain(qmail, send2, sink, 39)
    send2.stop()
    expect_exactly_once(sink, want)
    for d in domains:
        assert sink.label(d)["peak"] == 2
    no_trouble(send.log() + send2.log())


def test_held_past_the_queue_lifetime_while_paused_bounces(qmail):
    """A destination that refuses every connection pauses and probes with
    one delivery at a time. Mail held for it past the queue lifetime is
    bounced: a message whose one recipient waited (parked) gets the probe,
    its final attempt, as stock qmail would give it; the recipients of a
    message that are still held when the probe fails are bounced with that
    failure, without an attempt."""
    sink = listeners_for(qmail, ["dead.example"])
    sink.command(f"mode {sink.name('127.0.0.2:0')} refuse")
    maildir = qh.local_maildir()
    qmail.control.write("queuelifetime", "1\n")
    qmail.control.write("concurrencydomains", "dead.example 1 failures=1 pause=3s\n")
    queue([("dead-0", ["u0@dead.example"])])
    send = qmail.send()
    send.wait_until(lambda: "destination dead.example: paused for 3s after 1 consecutive" in send.log(),
                    LONG, "the pause")
    queue([("dead-1", ["u1@dead.example"])])
    send.wait_until(lambda: held_by(send) == 1, LONG, "dead-1 held")
    queue([("dead-2", ["u2a@dead.example", "u2b@dead.example"])])
    send.wait_until(lambda: held_by(send) == 3, LONG, "dead-2 held")
    send.wait_until(lambda: len(list((maildir / "new").iterdir())) >= 2, LONG, "two bounces")
    log = send.log()
    assert "destination dead.example: probing with one delivery" in log
    assert "destination dead.example: paused for 3s the probe failed" in log
    bounced = lines_with(log, "held delivery: failure:")
    assert sorted(line.split(" to remote ")[1].split(":")[0] for line in bounced) == \
        ["u2a@dead.example", "u2b@dead.example"], bounced
    assert all("paused_after_repeated_failures" in line for line in bounced)
    # attempts: dead-0, then one per probe; never more than one at a time
    starts = [line for line in lines_with(log, "to remote u") if line.startswith("starting delivery")]
    assert len(starts) == 1 + log.count("probing with one delivery"), starts
    bounces = sorted(p.read_text(errors="replace") for p in (maildir / "new").iterdir())
    assert all("in the queue too long" in b and "establish an SMTP connection" in b for b in bounces), bounces
    assert any("it was paused after repeated failures" in b and "u2a@dead.example" in b
               and "u2b@dead.example" in b for b in bounces), bounces
    assert any("<u1@dead.example>" in b for b in bounces), bounces
    send.stop()
    assert sink.deliveries() == []


def test_without_the_file_scheduling_and_logs_are_stock(qmail):
    sink = listeners_for(qmail, ["s.example"])
    qmail.control.write("concurrencyremote", "7\n")
    want = queue(one_each("s.example", 10))
    send = qmail.send()
    # no per-destination limit: the global cap alone
    send.wait_until(lambda: sink.label("s.example")["held"] == 7, LONG, "7 held")
    drain(qmail, send, sink, 10)
    send.stop()
    log = send.log()
    no_trouble(log)
    assert "destination" not in log
    # the route report stays between the spawn and qmail-send
    for line in lines_with(log, ": success: "):
        assert line.split(": success: ")[1].startswith("127.0.0.2_accepted_message."), line
    expect_exactly_once(sink, want)
    r = dh.destinations_tool("-c")
    assert r.returncode == 0
    assert "no such file: remote deliveries have no per-destination limits" in r.stdout
