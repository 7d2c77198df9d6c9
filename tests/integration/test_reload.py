#!/usr/bin/python3
"""test_reload.py - SIGHUP re-reads the configuration without closing the listener.

A new mailbox takes effect (accepted at RCPT, delivered by the queue manager), connections
keep being accepted throughout, a session opened before the reload goes on, and a broken
configuration is refused with the running one kept.

    /usr/bin/python3 tests/integration/test_reload.py BUILD_DIR [name-filter...]
"""
import signal
import threading
import time

from ternlib import Group, Smtp, check, message, poll, run_main, unique


def send(srv, subj, rcpt="demo@localhost"):
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt(rcpt)
    qid = c.data(message(subj))
    c.quit()
    return qid


# One server; the tests run in order and build on each other.
reload_group = Group("reload", mailboxes=["demo"])
state = {}


@reload_group.test("sighup-reload-adds-mailbox")
def _(srv):
    before = srv.connect()
    before.ehlo()
    state["before"] = before
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt("newbox@localhost", 550, "5.1.1")
    c.quit()
    srv.mailboxes.append("newbox")
    srv.write_config()
    # Connect again and again while the server reloads: the listener must never go away.
    stop = threading.Event()
    probes = {"ok": 0, "bad": []}

    def prober():
        while not stop.is_set():
            try:
                with Smtp(srv.port, timeout=10) as p:
                    if p.greeting.code == 220:
                        probes["ok"] += 1
                        p.cmd("QUIT")
                    else:
                        probes["bad"].append(p.greeting.text)
            except Exception as e:  # noqa: BLE001
                probes["bad"].append(repr(e))
            time.sleep(0.02)

    t = threading.Thread(target=prober)
    t.start()
    try:
        time.sleep(0.3)
        srv.send_signal(signal.SIGHUP)

        def accepted():
            with srv.connect() as c2:
                c2.ehlo()
                c2.mail()
                ok = c2.cmd("RCPT TO:<newbox@localhost>").code == 250
                c2.cmd("QUIT")
                return ok
        ok = poll(accepted, 10, 0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        t.join(20)
    check(srv.running(), "tern exited on SIGHUP (status %s)\n%s" % (srv.proc.returncode,
                                                                    srv.log_tail()))
    check(ok, "newbox@localhost still refused 10s after SIGHUP\n%s" % srv.log_tail())
    check(not probes["bad"], "connections failed during the reload: %r" % probes["bad"][:5])
    check(probes["ok"] > 3, "only %d probe connections during the reload" % probes["ok"])


@reload_group.test("sighup-open-session-survives")
def _(srv):
    c = state.get("before")
    check(c, "no session from the previous test")
    subj = unique("hup-open")
    c.cmd("NOOP", 250, "2.0.0")
    c.mail()
    c.rcpt()
    c.data(message(subj))
    c.quit()
    srv.wait_delivery("demo@localhost", subj)


@reload_group.test("sighup-new-mailbox-gets-mail")
def _(srv):
    subj = unique("hup-new")
    send(srv, subj, "newbox@localhost")
    srv.wait_delivery("newbox@localhost", subj)


@reload_group.test("sighup-bad-config-keeps-old")
def _(srv):
    with open(srv.conf, "a") as f:
        f.write("this_is_not_a_keyword 42\n")
    srv.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    check(srv.running(), "tern exited after SIGHUP with a broken configuration\n%s" % srv.log_tail())
    subj = unique("hup-bad")
    send(srv, subj, "newbox@localhost")                # the running configuration stays
    srv.wait_delivery("newbox@localhost", subj)
    check("this_is_not_a_keyword" in srv.log_text(), "the configuration error is not logged")
    srv.write_config()                                 # repair it for the group's clean stop


if __name__ == "__main__":
    run_main()
