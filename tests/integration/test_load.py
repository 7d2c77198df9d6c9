#!/usr/bin/python3
"""test_load.py - many recipients and many clients at once.

100 recipients in one transaction (RFC 5321 4.5.3.1.8: a server must accept at least 100),
the 101st refused with 452 4.5.3 (max_recipients); 50 concurrent smtplib clients, all
accepted and delivered exactly once.

    /usr/bin/python3 tests/integration/test_load.py BUILD_DIR [name-filter...]
"""
import smtplib
import threading
import time

from ternlib import Group, Smtp, check, message, poll, qid_of, run_main, unique

BOXES = ["r%03d" % i for i in range(1, 102)]

g = Group("load", mailboxes=["demo"] + BOXES, max_recipients=100, max_connections_per_ip=200,
          max_connections=500)


@g.test("100-recipients")
def _(srv):
    subj = unique("hundred")
    c = srv.connect()
    c.ehlo()
    c.mail()
    # Pipelined, as a real MTA with PIPELINING would send them.
    c.send("".join("RCPT TO:<%s@localhost>\r\n" % b for b in BOXES))
    for _ in BOXES[:100]:
        c.expect(c.read(), 250, "2.1.5")
    c.expect(c.read(), 452, "4.5.3")        # recipient 101
    qid = c.data(message(subj))
    c.quit()
    t0 = time.monotonic()
    poll(lambda: not [b for b in BOXES[:100] if not srv.find(b + "@localhost", subj)], 30, 0.2)
    left = [b for b in BOXES[:100] if not srv.find(b + "@localhost", subj)]
    check(not left, "%d of 100 recipients got nothing after %.0fs: %s...\n%s" % (
        len(left), time.monotonic() - t0, left[:5], srv.log_tail()))
    for b in BOXES[:100]:
        check(len(srv.find(b + "@localhost", subj)) == 1, "%s got the message twice" % b)
    check(not srv.find("r101@localhost", subj), "the 101st recipient got the message")
    # Every recipient is named in the log with the queue ID (the message's whole story).
    log = srv.log_text()
    check(qid in log, "queue ID %s not in the log" % qid)


@g.test("50-concurrent-clients")
def _(srv):
    n = 50
    tag = unique("conc")
    barrier = threading.Barrier(n, timeout=30)
    results = [None] * n

    def client(i):
        try:
            s = smtplib.SMTP(timeout=60)
            s.connect("127.0.0.1", srv.port)
            barrier.wait()                  # everyone connected before anyone sends
            s.ehlo("c%d.test" % i)
            s.mail("a%d@example.org" % i)
            code, resp = s.rcpt("demo@localhost")
            if code != 250:
                raise RuntimeError("RCPT %d %r" % (code, resp))
            code, resp = s.data(message("%s-%02d" % (tag, i), "client %d\r\n" % i))
            if code != 250:
                raise RuntimeError("DATA %d %r" % (code, resp))
            results[i] = qid_of(resp.decode())
            s.quit()
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    bad = [(i, r) for i, r in enumerate(results) if not isinstance(r, str)]
    check(not bad, "%d of %d clients failed: %s" % (len(bad), n, "; ".join(
        "#%d %r" % x for x in bad[:5])))
    check(len(set(results)) == n, "queue IDs are not unique")

    def count():
        return sum(1 for _ in srv.find("demo@localhost", tag + "-"))
    poll(lambda: count() >= n, 40)
    got = count()
    check(got == n, "%d of %d messages delivered\n%s" % (got, n, srv.log_tail()))
    for i in range(n):
        k = len(srv.find("demo@localhost", "%s-%02d" % (tag, i)))
        check(k == 1, "message %d delivered %d times" % (i, k))


@g.test("connections-after-load")
def _(srv):
    # The server is still responsive and nothing is left half-open.
    c = srv.connect()
    c.ehlo()
    c.cmd("NOOP", 250, "2.0.0")
    c.quit()


limits = Group("limits", workers=1, max_connections_per_ip=3)


@limits.test("max-connections-per-ip-421")
def _(srv):
    # One worker, so the per-worker limit is the server's limit.
    held = [srv.connect() for _ in range(3)]
    extra = Smtp(srv.port)
    extra.expect(extra.greeting, 421, "4.7.0")
    check(extra.at_eof(), "connection over the limit not closed")
    held.pop().quit()
    # A slot is free again (the server may need a moment to notice the close).
    def fits():
        c = Smtp(srv.port)
        ok = c.greeting.code == 220
        c.close()
        return ok
    check(poll(fits, 5, 0.1), "no connection accepted after one of three closed")
    for c in held:
        c.quit()


if __name__ == "__main__":
    run_main()
