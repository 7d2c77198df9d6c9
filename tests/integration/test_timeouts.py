#!/usr/bin/python3
"""test_timeouts.py - RFC 5321 4.5.3.2 timeouts: an idle client gets 421 4.4.2 and is closed.

timeout_command 2 and timeout_data_block 2: idle after the greeting, inside a transaction,
inside DATA and inside a BDAT chunk (the partial message is dropped), and activity resets
the timer.

    /usr/bin/python3 tests/integration/test_timeouts.py BUILD_DIR [name-filter...]
"""
import time

from ternlib import Group, check, poll, run_main, unique

t_group = Group("timeouts", timeout_command=2, timeout_data_block=2)


def expect_timeout(c, lo=1.5, hi=8):
    t0 = time.monotonic()
    r = c.read(timeout=hi + 5)
    took = time.monotonic() - t0
    c.expect(r, 421, "4.4.2")
    check(lo <= took <= hi, "421 came after %.1fs, want about 2s" % took)
    check(c.at_eof(5), "connection still open after 421 4.4.2\n" + c.dump())


@t_group.test("timeout-idle-after-greeting")
def _(srv):
    c = srv.connect()
    expect_timeout(c, lo=1.5)


@t_group.test("timeout-idle-in-transaction")
def _(srv):
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt()
    expect_timeout(c)


@t_group.test("timeout-in-data")
def _(srv):
    subj = unique("timeout-data")
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt()
    c.cmd("DATA", 354)
    c.send("Subject: %s\r\n\r\npartial\r\n" % subj)
    expect_timeout(c)
    time.sleep(1)
    check(not srv.find("demo@localhost", subj), "a timed-out message was delivered")
    check(poll(lambda: not [f for f in srv.queue_files() if f.startswith("tmp")], 5),
          "the timed-out reception is still in spool/tmp: %r" % srv.queue_files())


@t_group.test("timeout-in-bdat-chunk")
def _(srv):
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt()
    c.send(b"BDAT 100\r\nonly twenty octets..")
    expect_timeout(c)


@t_group.test("timeout-resets-on-activity")
def _(srv):
    c = srv.connect()
    c.ehlo()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        time.sleep(1)
        c.cmd("NOOP", 250, "2.0.0")
    c.quit()


if __name__ == "__main__":
    run_main()
