#!/usr/bin/python3
"""test_restart.py - the queue across restarts, and stopping with SIGTERM.

- A message whose delivery is deferred (an unwritable Maildir; a regular file where the
  Maildir must be) stays queued across SIGTERM and a restart, and is delivered exactly once
  afterwards.
- A delivered message is never delivered again after restarts.
- SIGTERM: open sessions get 421 4.3.2 after shutdown_grace, tern exits 0, and a message
  whose end of data was never acknowledged is not delivered, then or after a restart.

    /usr/bin/python3 tests/integration/test_restart.py BUILD_DIR [name-filter...]
"""
import os
import signal
import socket
import time

from ternlib import Group, TestFailure, check, message, poll, run_main, unique

# Each test makes its own server(s).
q = Group("queue", server=False)


def send(srv, subj, rcpt="demo@localhost"):
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt(rcpt)
    qid = c.data(message(subj))
    c.quit()
    return qid


def deferred_restart(srv, block, unblock, what):
    """Deliver to demo while block() keeps its Maildir from being written: the message must
    stay queued (deferred, not bounced), survive SIGTERM and a restart, and be delivered
    exactly once after unblock(). Mail for alice is not held up meanwhile."""
    block()
    srv.chown_tree(srv.maildir)
    srv.start()
    subj = unique("deferred")
    qid = send(srv, subj)
    other = unique("other")
    send(srv, other, "alice@localhost")
    srv.wait_delivery("alice@localhost", other)
    time.sleep(2.5)                    # the queue manager tries (retry_min 1) and fails
    check(srv.queued(qid), "with %s, message %s left the spool instead of being deferred "
          "(spool: %r)\n%s" % (what, qid, srv.queue_files(), srv.log_tail()))
    check(not srv.find("demo@localhost", subj), "delivered although %s" % what)
    srv.stop_checked()
    unblock()
    srv.start()
    srv.wait_delivery("demo@localhost", subj, timeout=20)
    check(poll(lambda: not srv.queued(qid), 15),
          "message %s still in the spool after delivery: %r" % (qid, srv.queued(qid)))
    time.sleep(1.5)
    n = len(srv.find("demo@localhost", subj))
    check(n == 1, "deferred message delivered %d times" % n)
    check(len(srv.find("alice@localhost", other)) == 1, "alice's message delivered again")
    srv.stop_checked()


@q.test("restart-delivers-deferred-message-once")
def _(make):
    # demo's Maildir exists but tern's user may not write into it (EACCES: temporary).
    srv = make("defer")
    box = srv.mailbox_dir("demo@localhost")
    os.makedirs(box)
    deferred_restart(srv, lambda: os.chmod(box, 0o555), lambda: os.chmod(box, 0o755),
                     "an unwritable Maildir")


@q.test("maildir-path-blocked-by-file-is-deferred")
def _(make):
    # A regular file where demo's Maildir must be (ENOTDIR): a local configuration problem
    # the administrator fixes, so delivery is deferred, not bounced (Postfix: 4.2.0).
    srv = make("enotdir")
    box = srv.mailbox_dir("demo@localhost")

    def block():
        os.makedirs(os.path.dirname(box))
        with open(box, "w") as f:
            f.write("not a Maildir\n")
    deferred_restart(srv, block, lambda: os.unlink(box), "a regular file in place of the Maildir")


@q.test("restart-delivers-nothing-twice")
def _(make):
    srv = make("twice")
    srv.start()
    subs = [(unique("once"), who) for who in ("demo", "alice", "bob", "demo")]
    qids = [send(srv, s, who + "@localhost") for s, who in subs]
    for s, who in subs:
        srv.wait_delivery(who + "@localhost", s)
    check(poll(lambda: not any(srv.queued(x) for x in qids), 15),
          "delivered messages still in the spool: %r" % srv.queue_files())
    srv.stop_checked()
    srv.start()
    time.sleep(2.5)                                 # a restart rescans the spool
    srv.stop_checked()
    for s, who in subs:
        n = len(srv.find(who + "@localhost", s))
        check(n == 1, "%s got %s %d times after a restart" % (who, s, n))
    srv.start()                                      # and once more, for good measure
    time.sleep(1)
    for s, who in subs:
        check(len(srv.find(who + "@localhost", s)) == 1, "duplicate after a second restart")
    srv.stop_checked()


@q.test("sigterm-with-open-sessions")
def _(make):
    srv = make("term", shutdown_grace=2)
    srv.start()
    idle = srv.connect()
    idle.ehlo()
    busy = srv.connect()
    busy.ehlo()
    busy.mail()
    busy.rcpt()
    subj = unique("unfinished")
    busy.cmd("DATA", 354)
    busy.send("Subject: %s\r\n\r\nhalf a message\r\n" % subj)  # no end of data
    time.sleep(0.3)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    for name, c in (("idle", idle), ("busy", busy)):
        r = c.read(timeout=15)
        c.expect(r, 421, "4.3.2")
        check(c.at_eof(10), "%s session still open after 421" % name)
    rc = srv.stop()
    took = time.monotonic() - t0
    check(rc == 0, "tern exited %s after SIGTERM\n%s" % (rc, srv.log_tail()))
    check(took < 15, "tern took %.1fs to stop with shutdown_grace 2" % took)
    # The half-received message was never acknowledged: it must not show up, now or later.
    srv.start()
    time.sleep(1.5)
    check(not srv.find("demo@localhost", subj), "an unacknowledged message was delivered")
    check(not [f for f in srv.queue_files() if "tmp" in f.split(os.sep)[0]],
          "unfinished reception left in the spool: %r" % srv.queue_files())
    srv.stop_checked()


@q.test("sigterm-grace-then-exit")
def _(make):
    srv = make("term2", shutdown_grace=3)
    srv.start()
    keep = srv.connect()
    keep.ehlo()
    srv.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # During the grace period the open session still works...
    keep.cmd("NOOP", (250, 421))
    # ... and the process exits 0 at the end.
    rc = srv.stop()
    check(rc == 0, "exit status %s\n%s" % (rc, srv.log_tail()))
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        raise TestFailure("something still accepts on the port after tern exited")
    except OSError:
        pass


if __name__ == "__main__":
    run_main()
