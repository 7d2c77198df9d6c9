#!/usr/bin/python3
"""test_errors.py - every error path of the SMTP server, and SMTP smuggling.

Reply codes from RFC 5321 4.2/4.3.2 with RFC 3463 enhanced codes: unknown command (500 5.5.2),
bad syntax (501), out-of-sequence commands (503 5.5.1), unknown parameters (555 5.5.4), size
limits (RFC 1870: 552 5.3.4), unknown user (550 5.1.1), relay refusal (554 5.7.1), command
line length (RFC 5321 4.5.3.1.4), NUL octets, VRFY/EXPN (252), HELP, RSET, NOOP, QUIT, the
error limit (421), and the end-of-data ambiguity behind SMTP smuggling (RFC 5321 4.1.1.4,
2.3.8: only <CRLF>.<CRLF> ends DATA).

    /usr/bin/python3 tests/integration/test_errors.py BUILD_DIR [name-filter...]
"""
import time

from ternlib import Group, check, message, run_main, unique

MAX_SIZE = 100000
MAX_ERRORS = 10

g = Group("errors", max_message_size=MAX_SIZE, max_errors=MAX_ERRORS)


def session(srv, ehlo=True):
    c = srv.connect()
    if ehlo:
        c.ehlo()
    return c


@g.test("unknown-command")
def _(srv):
    c = session(srv, ehlo=False)
    c.cmd("FOOBAR", 500, "5.5.2")        # before EHLO too
    c.ehlo()
    c.cmd("FOOBAR baz", 500, "5.5.2")
    c.cmd("MAILFROM:<a@example.org>", 500, "5.5.2")
    c.cmd("", 500, "5.5.2")
    c.cmd("NOOP", 250, "2.0.0")
    c.quit()


@g.test("bad-syntax-501")
def _(srv):
    # Each error counts towards max_errors, so a fresh session every few commands.
    c = session(srv, ehlo=False)
    c.cmd("EHLO", 501, "5.5.4")
    c.cmd("HELO", 501, "5.5.4")
    c.cmd("EHLO bad..name", 501, "5.5.4")
    c.ehlo()
    c.quit()
    for bad in ("MAIL FROM:a@example.org", "MAIL FROM:<a@example.org", "MAIL TO:<a@example.org>",
                "MAIL FROM:<a@@example.org>", "MAIL FROM:<a@example.org> SIZE=abc",
                "MAIL FROM:<a@example.org> BODY=9BIT", "MAIL"):
        c = session(srv)
        c.cmd(bad, 501, ("5.5.4", "5.1.7", "5.5.2"))
        c.mail()
        c.quit()
    for bad in ("RCPT TO:demo@localhost", "RCPT TO:<>", "RCPT FROM:<demo@localhost>",
                "RCPT TO:<demo@localhost", "RCPT", "RCPT TO:<demo@localhost> NOTIFY=SOMETIMES"):
        c = session(srv)
        c.mail()
        c.cmd(bad, 501, ("5.5.4", "5.1.3", "5.5.2"))
        c.rcpt()
        c.quit()
    c = session(srv)
    c.mail()
    c.rcpt()
    c.cmd("DATA now", 501, "5.5.4")
    c.cmd("RSET everything", 501, "5.5.4")
    c.cmd("QUIT now", 501, "5.5.4")
    c.cmd("VRFY", 501, "5.5.4")
    c.quit()


@g.test("rcpt-before-mail-503")
def _(srv):
    c = session(srv)
    c.cmd("RCPT TO:<demo@localhost>", 503, "5.5.1")
    c.quit()


@g.test("data-before-rcpt-503")
def _(srv):
    c = session(srv)
    c.cmd("DATA", 503, "5.5.1")          # no MAIL
    c.mail()
    c.cmd("DATA", 503, "5.5.1")          # MAIL, no RCPT
    c.rcpt("nosuchuser@localhost", 550, "5.1.1")
    c.cmd("DATA", 503, "5.5.1")          # only refused recipients
    c.quit()


@g.test("mail-twice-503")
def _(srv):
    c = session(srv)
    c.mail()
    c.cmd("MAIL FROM:<b@example.org>", 503, "5.5.1")
    c.rcpt()
    c.cmd("MAIL FROM:<b@example.org>", 503, "5.5.1")
    c.cmd("RSET", 250, "2.0.0")
    c.mail()                             # RSET ends the transaction
    c.quit()


@g.test("mail-before-helo-503")
def _(srv):
    c = session(srv, ehlo=False)
    c.cmd("MAIL FROM:<a@example.org>", 503, "5.5.1")
    c.cmd("RCPT TO:<demo@localhost>", 503, "5.5.1")
    c.cmd("DATA", 503, "5.5.1")
    c.ehlo()
    c.mail()
    c.quit()


@g.test("unknown-parameter-555")
def _(srv):
    c = session(srv)
    c.cmd("MAIL FROM:<a@example.org> FOO=BAR", 555, "5.5.4")
    c.cmd("MAIL FROM:<a@example.org> XYZZY", 555, "5.5.4")
    c.mail()
    c.cmd("RCPT TO:<demo@localhost> FOO=BAR", 555, "5.5.4")
    c.rcpt()
    c.quit()


@g.test("size-parameter-too-big-552")
def _(srv):
    c = session(srv)
    c.cmd("MAIL FROM:<a@example.org> SIZE=%d" % (MAX_SIZE + 1), 552, "5.3.4")
    c.cmd("MAIL FROM:<a@example.org> SIZE=99999999999999", 552, "5.3.4")
    c.mail(params="SIZE=%d" % (MAX_SIZE // 2))
    c.quit()


@g.test("message-too-big-552")
def _(srv):
    subj = unique("big")
    line = "x" * 70 + "\r\n"
    body = message(subj, line * (MAX_SIZE // len(line) + 200))
    c = session(srv)
    c.mail()                               # no SIZE: the limit is found while reading
    c.rcpt()
    c.cmd("DATA", 354)
    c.send(body + ".\r\n")
    c.expect(c.read(timeout=30), 552, "5.3.4")
    c.cmd("NOOP", 250, "2.0.0")            # the session goes on
    # The same with BDAT: refused at the latest with the LAST chunk.
    c.mail()
    c.rcpt()
    data = body.encode()
    half = len(data) // 2
    c.send(b"BDAT %d\r\n" % half + data[:half])
    r = c.read(timeout=30)
    if r.code == 250:
        c.send(b"BDAT %d LAST\r\n" % (len(data) - half) + data[half:])
        r = c.read(timeout=30)
    c.expect(r, 552, "5.3.4")
    c.cmd("RSET", 250, "2.0.0")
    c.quit()
    time.sleep(1)
    check(not srv.find("demo@localhost", subj), "the oversized message was delivered")


@g.test("message-at-limit-accepted")
def _(srv):
    subj = unique("fits")
    head = message(subj, "")
    line = "y" * 70 + "\r\n"
    n = (MAX_SIZE - len(head) - 2000) // len(line)
    c = session(srv)
    c.mail(params="SIZE=%d" % MAX_SIZE)
    c.rcpt()
    c.data(head + line * n)
    c.quit()
    srv.wait_delivery("demo@localhost", subj)


@g.test("unknown-user-550")
def _(srv):
    c = session(srv)
    c.mail()
    c.rcpt("nosuchuser@localhost", 550, "5.1.1")
    c.rcpt("demo.x@localhost", 550, "5.1.1")
    c.rcpt("demo@localhost")               # a refused recipient does not end the transaction
    c.quit()


@g.test("no-open-relay-554")
def _(srv):
    c = session(srv)
    c.mail()
    for rcpt in ("someone@example.com", "demo@localhost.example.com", "demo@sub.localhost"):
        c.rcpt(rcpt, 554, "5.7.1")
    # Old relay tricks must not relay either (any 5xx: unknown user or relay denied).
    for trick in ("<someone%example.com@localhost>", "<@localhost:someone@example.com>",
                  "<someone@example.com@localhost>", '<"someone@example.com">'):
        r = c.cmd("RCPT TO:" + trick)
        check(500 <= r.code < 600, "RCPT TO:%s got %r, want a 5xx refusal" % (trick, r.text))
    c.cmd("DATA", 503, "5.5.1")
    c.quit()


@g.test("line-too-long-500")
def _(srv):
    c = session(srv)
    c.cmd("NOOP " + "x" * 600, 500, "5.5.2")
    c.cmd("NOOP", 250, "2.0.0")            # the session still works
    c.cmd("MAIL FROM:<" + "a" * 5000 + "@example.org>", 500, "5.5.2")
    c.mail()
    c.cmd("RCPT TO:<" + "d" * 100000 + "@localhost>", 500, "5.5.2")
    c.rcpt()
    c.cmd("RSET", 250, "2.0.0")
    c.quit()


@g.test("line-512-octets-accepted")
def _(srv):
    c = session(srv)
    line = "NOOP " + "x" * (512 - 2 - 5)   # exactly 512 octets with the CRLF
    c.cmd(line, 250, "2.0.0")
    c.cmd(line + "y", 500, "5.5.2")        # 513
    c.cmd("NOOP", 250, "2.0.0")
    c.quit()


@g.test("nul-in-command-500")
def _(srv):
    c = session(srv)
    c.send(b"NO\x00OP\r\n")
    c.expect(c.read(), 500, "any")
    c.send(b"MAIL FROM:<a@example.org>\x00 SIZE=10\r\n")
    r = c.read()
    check(r.code in (500, 501), "MAIL with NUL got %r, want 500/501" % r.text)
    c.cmd("NOOP", 250, "2.0.0")            # the session still works
    c.mail()
    c.quit()


@g.test("bare-lf-does-not-end-a-command")
def _(srv):
    # A command line ends only at CRLF (RFC 5321 2.3.8): "NOOP\nQUIT\r\n" is one line,
    # so exactly one reply comes and the connection stays open.
    c = session(srv)
    c.send(b"NOOP\nQUIT\r\n")
    r = c.read()
    check(r.code != 221, "a bare LF split the line: QUIT was executed")
    c.cmd("NOOP", 250, "2.0.0")
    c.quit()


@g.test("vrfy-expn-252")
def _(srv):
    c = session(srv)
    c.cmd("VRFY demo", 252, "any")
    c.cmd("VRFY nosuchuser@localhost", 252, "any")   # never reveals who exists by default
    c.cmd("EXPN staff", 252, "any")
    c.quit()


@g.test("help-214")
def _(srv):
    c = session(srv, ehlo=False)
    r = c.cmd("HELP", 214, "2.0.0")
    check("MAIL" in r.text, "HELP does not mention MAIL: %r" % r.text)
    c.cmd("HELP RCPT", 214, "2.0.0")
    c.quit()


@g.test("rset-noop-quit")
def _(srv):
    c = session(srv, ehlo=False)
    c.cmd("NOOP", 250, "2.0.0")
    c.cmd("RSET", 250, "2.0.0")
    c.ehlo()
    c.mail()
    c.rcpt()
    c.cmd("RSET", 250, "2.0.0")
    c.cmd("RCPT TO:<demo@localhost>", 503, "5.5.1")   # RSET really ended the transaction
    c.cmd("NOOP hello", 250, "2.0.0")
    c.quit()                                          # 221 2.0.0 and the server closes


@g.test("not-implemented-502")
def _(srv):
    c = session(srv)
    c.cmd("TURN", 502, "5.7.0")  # refused as unsafe (RFC 2821 4.1.1), docs/commands.md
    c.cmd("SEND FROM:<a@example.org>", 502, "5.5.1")
    c.quit()


@g.test("too-many-errors-421")
def _(srv):
    c = session(srv)
    c.send("FOO\r\n" * (MAX_ERRORS + 5))
    codes = []
    while True:
        try:
            r = c.read(timeout=10)
        except Exception:  # noqa: BLE001 - EOF ends the loop
            break
        codes.append((r.code, r.esc))
        if r.code == 421:
            break
    check(codes[:MAX_ERRORS] == [(500, "5.5.2")] * MAX_ERRORS,
          "first %d replies %r, want 500 5.5.2 each\n%s" % (MAX_ERRORS, codes, c.dump()))
    check(len(codes) == MAX_ERRORS + 1 and codes[-1][0] == 421 and codes[-1][1][0] == "4",
          "after %d errors got %r, want one 421 4.x.x\n%s" % (MAX_ERRORS, codes[MAX_ERRORS:],
                                                            c.dump()))
    check(c.at_eof(), "connection still open after 421\n" + c.dump())
    # Errors of different kinds count too, and a good command does not reset the count.
    c = session(srv)
    for i in range(MAX_ERRORS - 1):
        c.cmd(("RCPT TO:<demo@localhost>", "DATA", "FOO", "MAIL FROM:bad")[i % 4],
              (503, 503, 500, 501)[i % 4])
        c.cmd("NOOP", 250, "2.0.0")
    c.send("BAR\r\n")
    c.expect(c.read(), 500, "5.5.2")
    c.expect(c.read(), 421, "any")
    check(c.at_eof(), "connection still open after 421\n" + c.dump())


# SMTP smuggling (CVE-2023-51764 and friends): a message whose content holds an end-of-data
# look-alike must not let the rest be read as commands. tern refuses such content after the
# real end of data, so exactly one reply comes and nothing is delivered.
SMUGGLE = [("lf-dot-crlf", "\n.\r\n"), ("cr-dot-crlf", "\r.\r\n"), ("lf-dot-lf", "\n.\n"),
           ("crlf-dot-lf", "\r\n.\n"), ("crlf-dot-cr", "\r\n.\r"), ("cr-dot-cr", "\r.\r")]


def smuggle(srv, label, fake_end, use_bdat=False):
    subj, evil = unique("smuggle-" + label), unique("evil-" + label)
    inner = ("MAIL FROM:<evil@x.example>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n"
             "Subject: %s\r\n\r\nsmuggled\r\n" % evil)
    content = ("Subject: %s\r\n\r\nbody" % subj) + fake_end + inner
    c = session(srv)
    c.mail()
    c.rcpt()
    c.cmd("DATA", 354)
    c.send(content + ".\r\n")              # the real end of data
    r = c.read(timeout=20)
    check(500 <= r.code < 600, "%s: content with %r got %r, want a 5xx refusal" % (
        label, fake_end, r.text))
    c.expect(r, r.code, "any")
    # Exactly one reply: the next thing the server says must answer our NOOP.
    c.cmd("NOOP", 250, "2.0.0")
    c.cmd("RCPT TO:<demo@localhost>", 503, "5.5.1")   # no transaction is open
    c.quit()
    time.sleep(0.5)
    check(not srv.find("alice@localhost", evil), "%s: the smuggled message was delivered" % label)
    check(not srv.find("demo@localhost", evil), "%s: the smuggled message was delivered" % label)
    check(not srv.find("demo@localhost", subj), "%s: content with a bare CR/LF was delivered" % label)
    check("evil@x.example" not in srv.log_text(), "%s: the server log shows the smuggled sender"
          % label)


for _label, _fake in SMUGGLE:
    g.test("smuggling-" + _label)(lambda srv, label=_label, fake=_fake: smuggle(srv, label, fake))


@g.test("smuggling-pipelined-after-real-end")
def _(srv):
    # Control: after the real <CRLF>.<CRLF>, a pipelined MAIL is a real command (RFC 2920).
    subj, second = unique("legit"), unique("legit2")
    c = session(srv)
    c.mail()
    c.rcpt()
    c.cmd("DATA", 354)
    c.send(message(subj) + "\r\n.\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<alice@localhost>\r\n"
           "DATA\r\n")
    c.expect(c.read(), 250, "2.0.0")
    c.expect(c.read(), 250, "2.1.0")
    c.expect(c.read(), 250, "2.1.5")
    c.expect(c.read(), 354)
    c.send(message(second) + "\r\n.\r\n")
    c.expect(c.read(), 250, "2.0.0")
    c.quit()
    srv.wait_delivery("demo@localhost", subj)
    srv.wait_delivery("alice@localhost", second)


@g.test("smuggling-bare-lf-in-data-refused")
def _(srv):
    subj = unique("barelf")
    c = session(srv)
    c.mail()
    c.rcpt()
    c.cmd("DATA", 354)
    c.send("Subject: %s\r\n\r\nline one\nline two\r\n.\r\n" % subj)
    r = c.read()
    check(500 <= r.code < 600, "bare LF in DATA got %r, want 5xx" % r.text)
    c.cmd("NOOP", 250, "2.0.0")
    c.quit()
    time.sleep(0.3)
    check(not srv.find("demo@localhost", subj), "message with a bare LF was delivered")


def refused_content(srv, label, content):
    """DATA whose content tern refuses after the end of data (550 5.6.0); nothing delivered."""
    subj = unique(label)
    c = session(srv)
    c.mail()
    c.rcpt()
    c.cmd("DATA", 354)
    c.send(("Subject: %s\r\n\r\n" % subj).encode() + content + b"\r\n.\r\n")
    c.expect(c.read(), 550, "5.6.0")
    c.cmd("NOOP", 250, "2.0.0")
    c.quit()
    time.sleep(0.3)
    check(not srv.find("demo@localhost", subj), "refused message was delivered")


@g.test("data-nul-refused")
def _(srv):
    refused_content(srv, "nul", b"before\x00after")


@g.test("data-line-over-1000-refused")
def _(srv):
    # RFC 5321 4.5.3.1.6: at most 1000 octets per line with the CRLF.
    refused_content(srv, "longline", b"z" * 1001)


@g.test("data-line-of-998-accepted")
def _(srv):
    subj = unique("line998")
    c = session(srv)
    c.mail()
    c.rcpt()
    c.data(("Subject: %s\r\n\r\n" % subj) + "w" * 998 + "\r\n")
    c.quit()
    srv.wait_delivery("demo@localhost", subj)


if __name__ == "__main__":
    run_main()
