"""big remote concurrency: 1200 remote deliveries at once, then a descriptor limit."""

import resource
import time

import qmail_harness as qh


def deliver(d, n_messages: int, concurrency: int, limits: dict, wait_held: int):
    """Queue n_messages x 4 remote deliveries to a sink that holds every
    session; once wait_held are held at once, show what qmail-rspawn holds,
    release them and wait for all deliveries. Returns qmail-send's log."""
    d.control.write("concurrencyremote", f"{concurrency}\n")
    sink = qh.SmtpSink(hold=120, name="demo-sink").start()
    send = None
    try:
        sink.route(d.control)
        qh.queue_messages(("demo@test.example", [f"u{i}-{k}@r{k}.example" for k in range(4)],
                           f"Subject: demo {i}\nX-Sink-Id: m{i}\n\nhello\n".encode())
                          for i in range(n_messages))
        t0 = time.monotonic()
        send = qh.QmailSend(limits=limits).start()
        rspawn = send.wait_until(lambda: send.pid("qmail-rspawn"), 120, "qmail-rspawn")
        send.wait_until(lambda: sink.status()["held"] >= wait_held, 300, f"{wait_held} held sessions")
        st = sink.status()
        print(f"  the sink holds {st['held']} sessions at once after {time.monotonic() - t0:.1f} s; "
              f"qmail-rspawn's highest descriptor: {qh.max_fd(rspawn)}")
        sink.hold_nobody()
        total = 4 * n_messages
        send.wait_until(lambda: send.successes() >= total, 300, "every delivery")
        send.stop()
        summary = sink.stop()
        got = sink.deliveries()
        print(f"  {total} deliveries in {time.monotonic() - t0:.1f} s, {len(set(got))} distinct at the "
              f"sink, at most {summary['peak']} sessions open at once")
        return send.log()
    finally:
        sink.stop()
        if send is not None:
            send.stop()


def show(log: str, *starts):
    for line in log.splitlines():
        if line.startswith(starts):
            print(f"    {line}")
            starts = tuple(s for s in starts if not line.startswith(s))


def demo(d):
    short = qh.descriptors_short(2 * 1200 + 5)  # qmail-rspawn: two a delivery and five
    if short:
        print(f"  (not shown here: 1200 deliveries at once {short})")
        return
    spawn = (qh.TREE / "conf-spawn").read_text().split()[0]
    print(f"  conf-spawn {spawn}, control/concurrencyremote 1200, a remote MX that is slow to answer:")
    log = deliver(d, 300, 1200, {}, 1200)
    print("  qmail-send's log:")
    show(log, "status: local 0/10 remote 1200/1200", "delivery 1200: success")

    print("\n  the same with `ulimit -n 1000` for qmail-start and concurrencyremote 2000:")
    log = deliver(d, 150, 2000, {resource.RLIMIT_NOFILE: (1000, 1000)}, 497)
    show(log, "warning:", "status: local 0/10 remote 497/497")
    d.queue.clear()
