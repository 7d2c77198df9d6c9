#!/usr/bin/python3
"""test_odmr.py - On-Demand Mail Relay (RFC 2645) against a real `tern serve`.

Mail for a domain held for ODMR (odmr_domain) is accepted from anyone on the smtp port and
kept in the queue; a customer connects to the ODMR listener, authenticates, sends ATRN, and
after "250" turns into the SMTP server on the same connection (this file's Customer: plain
sockets, since smtplib cannot turn roles). Checked: the held messages arrive there exactly
once and leave the queue; ATRN without AUTH (530), for a domain not entitled (450), with no
mail waiting (453), without argument (every domain of the user), a recipient refused with 5xx
(bounce to the sender) or 4xx (stays queued, delivered by the next ATRN), commands other than
those of RFC 2645 on the ODMR port (502), ATRN on the smtp port (502), no relay opened for
other domains, held mail bouncing when the queue lifetime is over, and a clean stop (no leak,
exit 0) in the middle of a turned session, with and without TLS."""

import base64
import os
import subprocess
import tempfile

from ternlib import (Group, check, poll, run_main, unique, build_dir, message, mkcerts,
                     tls_client_context, TestFailure)

PW = "odmr secret"
WORK = tempfile.mkdtemp(prefix="tern-it-odmr.", dir=os.environ.get("TERN_IT_TMP") or None)
os.chmod(WORK, 0o755)
USERS = os.path.join(WORK, "users")
_setup_error = None


def tern_user(*args):
    r = subprocess.run([os.path.join(build_dir(), "tern"), "user", "-f", USERS] + list(args),
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("tern user %s: %s%s" % (" ".join(args), r.stdout, r.stderr))


try:
    mkcerts(os.path.join(WORK, "pki"), "mx.tern.test", "localhost", "127.0.0.1")
    tern_user("add", "cust", "--password", PW, "--iterations", "4096")
    tern_user("add", "other", "--password", PW, "--iterations", "4096")
    os.chmod(USERS, 0o600)
except Exception as e:  # noqa: BLE001 - reported by every test
    _setup_error = "setup failed: %s" % e

OPTS = dict(users_file=USERS, auth_plaintext_loopback=True, listeners={"odmr": "odmr"},
            odmr_domain=["example.net cust", "second.net cust", "empty.net cust",
                         "foreign.net other"])

g = Group("odmr", **OPTS)


def plain(user, pw):
    return base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode()


def send_held(srv, rcpts, marker, sender="someone@example.org"):
    """Submit one message on the smtp port (unauthenticated, as a remote MX would)."""
    c = srv.connect()
    c.ehlo()
    c.mail(sender)
    for r in rcpts:
        c.rcpt(r)
    qid = c.data(message(marker))
    c.quit()
    return qid


def odmr_login(srv, user="cust", tls=False):
    c = srv.connect(port="odmr")
    r = c.ehlo()
    if tls:
        check("STARTTLS" in r.text, "no STARTTLS on the ODMR port: %r" % r.text)
        c.starttls(tls_client_context(os.path.join(WORK, "pki", "ca.crt")), "mx.tern.test")
        r = c.ehlo()
    check("ATRN" in r.text, "ATRN not advertised on the ODMR port: %r" % r.text)
    c.cmd("AUTH PLAIN " + plain(user, PW), 235, "2.7.0")
    return c


class Customer:
    """The on-demand host after the turn: an SMTP server on the turned connection.
    rcpt_reply(addr) gives the reply to each RCPT ("250 ..." by default)."""

    def __init__(self, smtp, rcpt_reply=None):
        self.c = smtp
        self.rcpt_reply = rcpt_reply or (lambda addr: "250 2.1.5 ok")
        self.messages = []          # (sender, [accepted rcpts], data bytes)
        self.commands = []

    def line(self):
        raw = self.c.f.readline()
        if not raw:
            raise TestFailure("tern closed the turned connection early\n" + self.c.dump())
        self.c.log("T:", raw.rstrip(b"\r\n"))
        check(raw.endswith(b"\r\n"), "command not ended by CRLF: %r" % raw)
        return raw[:-2].decode("utf-8", "replace")

    def serve(self):
        c = self.c
        c.sock.settimeout(30)
        c.send("220 customer.test ESMTP on-demand host\r\n")
        sender, rcpts = None, []
        while True:
            cmd = self.line()
            verb = cmd.split(" ", 1)[0].upper()
            self.commands.append(verb)
            if verb == "EHLO":
                c.send("250-customer.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == "MAIL":
                sender, rcpts = cmd[10:].split(">")[0].lstrip("<"), []
                c.send("250 2.1.0 ok\r\n")
            elif verb == "RCPT":
                addr = cmd[8:].split(">")[0].lstrip("<")
                reply = self.rcpt_reply(addr)
                if reply.startswith("2"):
                    rcpts.append(addr)
                c.send(reply + "\r\n")
            elif verb == "DATA":
                c.send("354 go ahead\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    raw = c.f.readline()
                    check(raw, "connection closed in DATA")
                    data += raw
                self.messages.append((sender, rcpts, data))
                c.send("250 2.0.0 stored\r\n")
            elif verb == "RSET":
                c.send("250 2.0.0 ok\r\n")
            elif verb == "QUIT":
                c.send("221 2.0.0 bye\r\n")
                check(c.at_eof(10), "tern did not close after QUIT\n" + c.dump())
                c.close()
                return self
            else:
                c.send("502 5.5.1 unexpected\r\n")

    def with_marker(self, marker):
        return [m for m in self.messages if marker.encode() in m[2]]


def atrn_session(srv, arg="example.net", rcpt_reply=None, user="cust", tls=False):
    c = odmr_login(srv, user, tls)
    r = c.cmd("ATRN" + (" " + arg if arg else ""), 250, "2.0.0")
    check("reversing" in r.text, "unexpected 250 text %r" % r.text)
    return Customer(c, rcpt_reply).serve()


def gone(srv, qid, timeout=20):
    return poll(lambda: not srv.queued(qid), timeout)


@g.test("held-mail-delivered-by-atrn-exactly-once")
def _(srv):
    check(_setup_error is None, _setup_error or "")
    m1, m2, m3 = unique("odmr1"), unique("odmr2"), unique("odmr3")
    q1 = send_held(srv, ["x@example.net"], m1)
    q2 = send_held(srv, ["y@example.net", "z@example.net"], m2)
    q3 = send_held(srv, ["w@second.net"], m3)   # another domain: stays for its own ATRN
    check(srv.queued(q1) and srv.queued(q2) and srv.queued(q3), "held mail not in the queue")
    cust = atrn_session(srv, "example.net")
    check(len(cust.with_marker(m1)) == 1, "message 1 arrived %d times" % len(cust.with_marker(m1)))
    check(len(cust.with_marker(m2)) == 1, "message 2 arrived %d times" % len(cust.with_marker(m2)))
    check(not cust.with_marker(m3), "mail for second.net was delivered on ATRN example.net")
    sender, rcpts, _ = cust.with_marker(m2)[0]
    check(sender == "someone@example.org", "MAIL FROM was %r" % sender)
    check(sorted(rcpts) == ["y@example.net", "z@example.net"], "recipients %r" % rcpts)
    check(cust.commands[0] == "EHLO" and cust.commands[-1] == "QUIT",
          "session was %r" % cust.commands)
    check(gone(srv, q1) and gone(srv, q2), "delivered messages still queued: %r" % srv.queue_files())
    check(srv.queued(q3), "the second.net message left the queue")
    log = srv.log_text()
    check("deferred qid=%s" % q3 not in log, "the queue manager tried to deliver held mail itself")
    # the rest, with a second ATRN for that domain
    cust = atrn_session(srv, "second.net")
    check(len(cust.with_marker(m3)) == 1, "second.net message not delivered once")
    check(gone(srv, q3), "second.net message still queued")


@g.test("atrn-without-argument-takes-every-domain-of-the-user")
def _(srv):
    m1, m2 = unique("odmrall1"), unique("odmrall2")
    q1 = send_held(srv, ["a@example.net"], m1)
    q2 = send_held(srv, ["b@second.net"], m2)
    cust = atrn_session(srv, None)
    check(len(cust.with_marker(m1)) == 1 and len(cust.with_marker(m2)) == 1,
          "not every domain of the user was delivered: %r" % [m[1] for m in cust.messages])
    check(gone(srv, q1) and gone(srv, q2), "messages still queued")


@g.test("atrn-without-auth-530")
def _(srv):
    c = srv.connect(port="odmr")
    c.ehlo()
    c.cmd("ATRN example.net", 530, "5.7.0")
    c.quit()


@g.test("atrn-domain-not-entitled-450")
def _(srv):
    c = odmr_login(srv)
    r = c.cmd("ATRN foreign.net", 450, "4.7.1")
    check("refused" in r.text, "450 text %r" % r.text)
    c.cmd("ATRN example.net,nosuch.example", 450, "4.7.1")
    c.cmd("ATRN bad..domain", 501, "5.5.4")
    c.quit()


@g.test("atrn-no-mail-453")
def _(srv):
    c = odmr_login(srv)
    c.cmd("ATRN empty.net", 453)
    c.cmd("NOOP", 250)           # the session goes on after 453
    c.quit()


@g.test("odmr-port-allows-only-rfc2645-commands")
def _(srv):
    c = srv.connect(port="odmr")
    r = c.ehlo()
    check("SIZE" not in r.text and "AUTH" in r.text, "ODMR EHLO: %r" % r.text)
    c.cmd("MAIL FROM:<a@example.org>", 502, "5.5.1")
    c.cmd("VRFY demo", 502, "5.5.1")
    c.cmd("RSET", 250)
    c.quit()
    s = srv.connect()
    s.ehlo()
    s.cmd("ATRN example.net", 502, "5.5.1")
    s.quit()


@g.test("held-domain-accepted-without-opening-a-relay")
def _(srv):
    c = srv.connect()
    c.ehlo()
    c.mail("x@example.org")
    c.rcpt("anyone@example.net")
    c.rcpt("victim@elsewhere.example", 554, "5.7.1")
    c.quit()


@g.test("customer-refuses-5xx-bounce-4xx-stays")
def _(srv):
    m = unique("odmrrefuse")
    qid = send_held(srv, ["perm@example.net", "temp@example.net", "ok@example.net"], m,
                    sender="demo@localhost")

    def policy(addr):
        return {"perm@example.net": "550 5.1.1 no such user",
                "temp@example.net": "450 4.2.1 mailbox busy"}.get(addr, "250 2.1.5 ok")

    cust = atrn_session(srv, "example.net", policy)
    got = cust.with_marker(m)
    check(len(got) == 1 and got[0][1] == ["ok@example.net"], "delivered: %r" % [x[1] for x in got])
    bounce = srv.wait_delivery("demo@localhost", "perm@example.net")
    check(b"550 5.1.1" in bounce[0], "bounce lacks the customer's reply")
    check(srv.queued(qid), "message with a deferred recipient left the queue")
    # the deferred recipient goes with the next ATRN, and only it
    cust = atrn_session(srv, "example.net")
    got = cust.with_marker(m)
    check(len(got) == 1 and got[0][1] == ["temp@example.net"], "second ATRN: %r" % [x[1] for x in got])
    check(gone(srv, qid), "message still queued after every recipient is done")


@g.test("customer-drops-the-connection-mail-stays-queued")
def _(srv):
    m1, m2 = unique("odmrdrop1"), unique("odmrdrop2")
    q1 = send_held(srv, ["d1@example.net"], m1)
    q2 = send_held(srv, ["d2@example.net"], m2)
    c = odmr_login(srv)
    c.cmd("ATRN example.net", 250, "2.0.0")
    cust = Customer(c)
    c.send("220 customer.test ESMTP\r\n")
    check(cust.line().upper().startswith("EHLO"), "no EHLO after the greeting")
    c.send("250 customer.test\r\n")
    check(cust.line().upper().startswith("MAIL"), "no MAIL after EHLO")
    c.close()                                   # gone in the middle of the session
    check(poll(lambda: ("deferred qid=%s" % q1) in srv.log_text() and
               ("deferred qid=%s" % q2) in srv.log_text(), 20),
          "both messages should be deferred after the customer left")
    check(srv.queued(q1) and srv.queued(q2), "held mail lost with the connection")
    cust = atrn_session(srv, "example.net")
    check(len(cust.with_marker(m1)) == 1 and len(cust.with_marker(m2)) == 1,
          "not delivered once each on the next ATRN: %r" % [m[1] for m in cust.messages])
    check(gone(srv, q1) and gone(srv, q2), "messages still queued")


@g.test("customer-refuses-the-session-mail-stays-queued")
def _(srv):
    m = unique("odmr554")
    qid = send_held(srv, ["r@example.net"], m, sender="demo@localhost")
    c = odmr_login(srv)
    c.cmd("ATRN example.net", 250, "2.0.0")
    c.send("220 customer.test ESMTP\r\n")
    check(Customer(c).line().upper().startswith("EHLO"), "no EHLO after the greeting")
    c.send("554 5.7.1 not now\r\n")
    check(c.at_eof(20), "tern kept the turned connection open after 554 to EHLO\n" + c.dump())
    c.close()
    check(poll(lambda: ("deferred qid=%s" % qid) in srv.log_text(), 20), "message not deferred")
    check("554 5.7.1 not now" in srv.log_text(), "the customer's reply is not in the log")
    check(srv.queued(qid), "held mail left the queue after the customer refused the session")
    check(not srv.find("demo@localhost", "r@example.net"), "a bounce was sent")
    cust = atrn_session(srv, "example.net")
    check(len(cust.with_marker(m)) == 1, "not delivered on the next ATRN")
    check(gone(srv, qid), "message still queued")


CERT = "%s %s" % (os.path.join(WORK, "pki", "server-chain.crt"), os.path.join(WORK, "pki", "server.key"))
tg = Group("odmr-tls", tls_certificate=CERT, **OPTS)


@tg.test("atrn-session-under-starttls")
def _(srv):
    check(_setup_error is None, _setup_error or "")
    m = unique("odmrtls")
    qid = send_held(srv, ["t@example.net"], m)
    cust = atrn_session(srv, "example.net", tls=True)
    check(len(cust.with_marker(m)) == 1, "message not delivered once over the TLS relay")
    check(gone(srv, qid), "message still queued")


lg = Group("odmr-lifetime", queue_lifetime="2s", **OPTS)


@lg.test("held-mail-bounces-after-queue-lifetime")
def _(srv):
    check(_setup_error is None, _setup_error or "")
    m = unique("odmrexpire")
    qid = send_held(srv, ["late@example.net"], m, sender="demo@localhost")
    bounce = srv.wait_delivery("demo@localhost", "late@example.net", timeout=40)
    check(b"4.4.7" in bounce[0], "bounce does not say the lifetime passed")
    check(gone(srv, qid), "expired message still queued")


@tg.test("stop-during-an-atrn-session-is-clean-tls")
def _(srv):
    # As below, under TLS and with the session started: the queue manager has sent EHLO.
    send_held(srv, ["s@second.net"], unique("odmrstop"))
    c = odmr_login(srv, tls=True)
    c.cmd("ATRN second.net", 250, "2.0.0")
    c.send("220 customer.test ESMTP\r\n")
    check(Customer(c).line().upper().startswith("EHLO"), "no EHLO after the greeting")
    srv._odmr_hanging = c


@g.test("stop-during-an-atrn-session-is-clean")   # last of "odmr": not in the 2 s lifetime group
def _(srv):
    # The turned session is left waiting for the customer's greeting; the group's end stops
    # tern (SIGTERM) and checks for a clean exit without sanitizer reports.
    send_held(srv, ["s@second.net"], unique("odmrstop"))
    c = odmr_login(srv)
    c.cmd("ATRN second.net", 250, "2.0.0")
    srv._odmr_hanging = c   # keep the connection open until the server stops


if __name__ == "__main__":
    run_main()
