"""per-destination limits: a default cap per domain, a bigger one for one domain, a pause after 421s."""

import destinations as dh
import qmail_harness as qh

DOMAINS = ["big.example", "small1.example", "small2.example", "busy.example"]


def demo(d):
    conf = ("# every domain on its own: 2 at once\n*                2\n"
            "big.example      5\n"
            "busy.example     2 failures=3 pause=3s\n")
    d.control.write("concurrencydomains", conf)
    print("  control/concurrencydomains:")
    for line in conf.splitlines():
        print(f"    {line}")
    r = dh.destinations_tool("-c")
    print("  qmail-destinations -c:")
    for line in r.stdout.splitlines():
        print(f"    {line}")

    sink = dh.DestSink({f"127.0.0.{k + 2}:0": [dom] for k, dom in enumerate(DOMAINS)}, name="demo-dest").start()
    send = None
    try:
        dh.routes(d.control, {dom: sink.name(f"127.0.0.{k + 2}:0") for k, dom in enumerate(DOMAINS)})
        sink.command(f"mode {sink.name('127.0.0.5:0')} 421")  # busy.example answers 421 for now
        qh.queue_messages(dh.message(f"{dom}-{i}", [f"u{i}@{dom}"]) for dom in DOMAINS for i in range(12))
        send = qh.QmailSend().start()
        caps = {"big.example": 5, "small1.example": 2, "small2.example": 2}
        send.wait_until(lambda: all(sink.label(k)["held"] == v for k, v in caps.items()), 120,
                        "every destination at its cap")
        send.wait_until(lambda: "destination busy.example: paused" in send.log(), 120, "the pause")
        print("\n  the remote servers hold every session; sessions open at once, as they see them:")
        for dom in DOMAINS:
            print(f"    {dom:16} {sink.label(dom)['open']}")
        r = dh.destinations_tool()
        print("  qmail-destinations:")
        for line in r.stdout.splitlines():
            print(f"    {line}")
        sink.command(f"mode {sink.name('127.0.0.5:0')} normal")
        sink.command("pass")
        send.wait_until(lambda: "destination busy.example: resumed" in send.log(), 120, "busy.example back")
        send.proc.send_signal(14)  # ALRM: retry the deferred ones now
        send.wait_until(lambda: send.successes() >= 48, 120, "every delivery")
        send.stop()
        print("\n  qmail-send's log, lines about destinations:")
        for line in send.log().splitlines():
            if line.startswith("destination"):
                print(f"    {line}")
        print(f"  {len(sink.deliveries())} deliveries, at most "
              + ", ".join(f"{dom} {sink.label(dom)['peak']}" for dom in DOMAINS) + " at once")
    finally:
        sink.stop()
        if send is not None:
            send.stop()
        d.control.remove("concurrencydomains")
        d.control.remove("smtproutes")
