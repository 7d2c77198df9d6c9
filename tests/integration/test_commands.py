#!/usr/bin/python3
"""test_commands.py - the rest of the command set (docs/commands.md) against a real `tern serve`:
TURN (502 5.7.0 pointing to ATRN), SEND (502), SOML and SAML (a transaction delivered to the
Maildir, like MAIL), X-EXPS (502 pointing to AUTH), HELP and HELP for each command, RFC 4865
FUTURERELEASE (the EHLO keyword read by Python's smtplib, HOLDFOR and HOLDUNTIL messages held
for a few seconds and then delivered to a Maildir, HOLDFOR beyond the limit refused with
554 5.3.4, a client that may not relay refused), X-DELIVERY-TIME in a transaction, and RFC 1985
ETRN: refused for a client outside etrn_networks, and for an allowed client the deferred mail
for a domain is delivered at once to a peer (testkit/smtp-capture, aiosmtpd) that accepts now,
while the retry schedule alone would wait an hour. Delivery is always polled for; the hold is
checked by the times recorded in the queue file and on the delivered file, never by timing."""

import os
import smtplib
import subprocess
import time

from ternlib import (TESTKIT, Group, TestFailure, check, free_port, message, poll, run_main,
                     unique, wait_listen)

HOLD = 3  # seconds a held message waits in these tests


def queue_hold_until(srv, qid):
    """The hold_until value in the queue file of qid (the envelope line), or None."""
    path = os.path.join(srv.spool, "queue", qid)
    with open(path, "rb") as f:
        head = f.read(8192).split(b"\n\n", 1)[0].decode()
    for line in head.split("\n"):
        if line.startswith("hold_until "):
            return int(line.split()[1])
    return None


def check_held_then_delivered(srv, qid, marker, before, after, hold):
    """The queue file records a release time of about now+hold; the message reaches the Maildir,
    and not before that time."""
    until = queue_hold_until(srv, qid)
    check(until is not None, "no hold_until line in the queue file of %s" % qid)
    check(int(before) + hold <= until <= int(after) + hold + 1,
          "hold_until %s is not %d s after the transaction (%d..%d)" % (until, hold, before, after))
    got = poll(lambda: srv.find("demo@localhost", marker), 30)
    if not got:
        raise TestFailure("held message %s never delivered\n%s" % (qid, srv.log_tail()))
    path = got[0][0]
    delivered = os.stat(path).st_mtime
    check(delivered >= until, "delivered at %.1f, before its release time %d" % (delivered, until))
    check("held qid=%s" % qid in srv.log_text(), "no 'held' log line for %s" % qid)


g = Group("commands", relay_networks="127.0.0.1", future_release_max="1h")


@g.test("turn-refused")
def _(srv):
    c = srv.connect()
    c.ehlo()
    r = c.cmd("TURN", 502, "5.7.0")
    check("ATRN" in r.text and "2821" in r.text, "TURN refusal does not explain: %r" % r.text)
    c.quit()


@g.test("send-refused")
def _(srv):
    c = srv.connect()
    c.ehlo()
    r = c.cmd("SEND FROM:<a@example.org>", 502, "5.5.1")
    check("terminal" in r.text, "SEND refusal does not explain: %r" % r.text)
    c.cmd("RCPT TO:<demo@localhost>", 503, "5.5.1")  # no transaction was opened
    c.quit()


@g.test("x-exps-refused")
def _(srv):
    c = srv.connect()
    c.ehlo()
    r = c.cmd("X-EXPS GSSAPI", 502, "5.5.1")
    check("AUTH" in r.text, "X-EXPS refusal does not point to AUTH: %r" % r.text)
    c.quit()


@g.test("soml-saml-delivered")
def _(srv):
    for verb in ("SOML", "SAML"):
        marker = unique(verb.lower())
        c = srv.connect()
        c.ehlo()
        c.cmd("%s FROM:<a@example.org>" % verb, 250, "2.1.0")
        c.rcpt("demo@localhost")
        c.data(message(marker))
        c.quit()
        srv.wait_delivery("demo@localhost", marker)


@g.test("help")
def _(srv):
    c = srv.connect()
    c.ehlo()
    r = c.cmd("HELP", 214, "2.0.0")
    for verb in ("EHLO", "MAIL", "RCPT", "DATA", "BDAT", "ETRN", "TURN", "SEND", "SOML", "SAML",
                 "X-DELIVERY-TIME", "X-EXPS", "STARTTLS", "AUTH", "VRFY", "EXPN", "HELP"):
        check((" %s " % verb) in (" " + r.text.replace("\n", " ") + " "),
              "HELP does not list %s: %r" % (verb, r.text))
        h = c.cmd("HELP %s" % verb.lower(), 214, "2.0.0")
        check(h.lines[0][10:].upper().startswith(verb), "HELP %s: %r" % (verb, h.text))
    c.quit()


@g.test("ehlo-futurerelease")
def _(srv):
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=15)
    s.ehlo("client.test")
    check(s.has_extn("futurerelease"), "no FUTURERELEASE in EHLO: %r" % s.esmtp_features)
    check(s.has_extn("etrn"), "no ETRN in EHLO: %r" % s.esmtp_features)
    interval, latest = s.esmtp_features["futurerelease"].split()
    check(interval == "3600", "max-future-release-interval %r, want 3600" % interval)
    t = time.mktime(time.strptime(latest, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    check(abs(t - (time.time() + 3600)) < 120, "max-future-release-date-time %r" % latest)
    s.quit()


@g.test("holdfor-held-then-delivered")
def _(srv):
    marker = unique("holdfor")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=15)
    s.ehlo("client.test")
    before = time.time()
    s.mail("a@example.org", ["HOLDFOR=%d" % HOLD])
    s.rcpt("demo@localhost")
    code, text = s.data(message(marker).encode())
    after = time.time()
    check(code == 250, "DATA: %d %r" % (code, text))
    qid = text.decode().rsplit(" ", 1)[1]
    s.quit()
    check_held_then_delivered(srv, qid, marker, before, after, HOLD)


@g.test("holduntil-held-then-delivered")
def _(srv):
    marker = unique("holduntil")
    c = srv.connect()
    c.ehlo()
    before = time.time()
    # an RFC 3339 time with an offset: now + HOLD seconds, written in UTC+01:30
    when = time.strftime("%Y-%m-%dT%H:%M:%S+01:30", time.gmtime(int(before) + HOLD + 5400))
    c.mail("a@example.org", "HOLDUNTIL=" + when)
    c.rcpt("demo@localhost")
    qid = c.data(message(marker))
    after = time.time()
    c.quit()
    check_held_then_delivered(srv, qid, marker, int(before), after, HOLD)


@g.test("holdfor-over-limit-refused")
def _(srv):
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=15)
    s.ehlo("client.test")
    code, text = s.mail("a@example.org", ["HOLDFOR=3601"])
    check(code == 554 and text.startswith(b"5.3.4"),
          "HOLDFOR over the limit: %d %r, want 554 5.3.4" % (code, text))
    s.quit()
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.org> HOLDFOR=soon", 501, "5.5.4")
    c.cmd("MAIL FROM:<a@example.org> HOLDFOR=5 HOLDUNTIL=2030-01-01T00:00:00Z", 501, "5.5.4")
    c.cmd("MAIL FROM:<a@example.org> HOLDUNTIL=2999-01-01T00:00:00Z", 554, "5.3.4")
    c.quit()


@g.test("x-delivery-time")
def _(srv):
    marker = unique("xdt")
    c = srv.connect()
    c.ehlo()
    c.cmd("X-DELIVERY-TIME +%d" % HOLD, 503, "5.5.1")  # no transaction yet
    c.mail("a@example.org")
    r = c.cmd("X-DELIVERY-TIME", 250, "2.0.0")
    check("No delivery time" in r.text, "X-DELIVERY-TIME query: %r" % r.text)
    c.cmd("X-DELIVERY-TIME next week", 501, "5.5.4")
    c.cmd("X-DELIVERY-TIME +7200", 554, "5.3.4")
    before = time.time()
    r = c.cmd("X-DELIVERY-TIME +%d" % HOLD, 250, "2.0.0")
    check("Delivery time set to 20" in r.text, "X-DELIVERY-TIME set: %r" % r.text)
    set_to = r.text.rsplit(" ", 1)[1]
    r = c.cmd("X-DELIVERY-TIME", 250, "2.0.0")
    check(set_to in r.text, "X-DELIVERY-TIME query %r does not report %s" % (r.text, set_to))
    c.rcpt("demo@localhost")
    qid = c.data(message(marker))
    after = time.time()
    c.quit()
    check_held_then_delivered(srv, qid, marker, before, after, HOLD)


# A client that may not relay may not park mail here either; it may not ETRN.
strict = Group("strict", future_release_max="1h")


@strict.test("hold-not-allowed")
def _(srv):
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.org> HOLDFOR=60", 550, "5.7.1")
    c.mail("a@example.org")
    c.cmd("X-DELIVERY-TIME +60", 550, "5.7.1")
    c.quit()


@strict.test("etrn-not-allowed")
def _(srv):
    c = srv.connect()
    c.ehlo()
    r = c.cmd("ETRN example.org", 459, "4.7.1")
    check("not allowed" in r.text, "ETRN refusal: %r" % r.text)
    c.quit()


# ETRN: mail for etrn.test goes (transport override) to a port where nobody listens at first, so
# it is deferred, with the next retry an hour away. Then a peer starts there, ETRN asks the queue
# manager to flush, and the message arrives at once.
PEER_PORT = free_port()
etrn = Group("etrn", relay_networks="127.0.0.1", etrn_networks="127.0.0.0/8",
             retry_schedule="1h", delay_warning=0,
             transport="etrn.test 127.0.0.1:%d starttls=none" % PEER_PORT)


@etrn.test("etrn-delivers-deferred-mail")
def _(srv):
    marker = unique("etrn")
    c = srv.connect()
    c.ehlo()
    c.mail("a@example.org")
    c.rcpt("someone@etrn.test")
    qid = c.data(message(marker))
    c.quit()
    deferred = poll(lambda: "deferred qid=%s" % qid in srv.log_text(), 30)
    check(deferred, "no first (failed) delivery attempt for %s\n%s" % (qid, srv.log_tail()))
    outdir = os.path.join(srv.dir, "peer")
    os.makedirs(outdir)
    log = open(os.path.join(srv.dir, "peer.log"), "ab")
    peer = subprocess.Popen(["/usr/bin/python3", os.path.join(TESTKIT, "smtp-capture"), "-l",
                             "127.0.0.1:%d" % PEER_PORT, "-o", outdir, "--hostname",
                             "peer.etrn.test"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        check(wait_listen(PEER_PORT), "smtp-capture did not start")
        c = srv.connect()
        c.cmd("ETRN etrn.test", 503, "5.5.1")  # before EHLO
        c.ehlo()
        c.cmd("ETRN", 501, "5.5.4")
        c.cmd("ETRN #outbound", 459, "4.7.1")
        # sent together: the NOOP waits for ETRN's answer from the queue manager
        c.send("ETRN nothing-queued.test\r\nNOOP\r\n")
        r = c.expect(c.read(), 251, "2.0.0")
        check("no messages waiting" in r.text, "ETRN without mail: %r" % r.text)
        c.expect(c.read(), 250, "2.0.0")
        r = c.cmd("ETRN etrn.test", 253, "2.0.0")
        check("1 pending message" in r.text, "ETRN: %r" % r.text)

        def captured():
            for name in os.listdir(outdir):
                p = os.path.join(outdir, name)
                with open(p, "rb") as f:
                    if marker.encode() in f.read():
                        return p
            return None
        got = poll(captured, 30)
        check(got, "the flushed message did not reach the peer\n%s" % srv.log_tail())
        removed = poll(lambda: not os.path.exists(os.path.join(srv.spool, "queue", qid)), 30)
        check(removed, "%s still queued after delivery" % qid)
        r = c.cmd("ETRN @test", 251, "2.0.0")  # the domain and below: nothing left
        c.quit()
    finally:
        peer.terminate()
        peer.wait(10)
        log.close()


if __name__ == "__main__":
    run_main()
