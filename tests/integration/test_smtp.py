#!/usr/bin/python3
"""test_smtp.py - complete SMTP transactions against a real `tern serve`, with real clients.

swaks, curl and Python's smtplib deliver to a local Maildir (RFC 5321 3.3, 4.4 trace
headers); EHLO extensions; HELO; PIPELINING (RFC 2920); BDAT/CHUNKING and BINARYMIME
(RFC 3030) with the testkit's smtp-bdat and by hand; dot-stuffing (RFC 5321 4.5.2);
8BITMIME/SMTPUTF8 (RFC 6152, 6531).

    /usr/bin/python3 tests/integration/test_smtp.py BUILD_DIR [name-filter...]
"""
import os
import re
import smtplib
import subprocess
import tempfile

from ternlib import (TESTKIT, Group, body_of, check, header_values, headers_of, message, norm,
                     poll, qid_of, run_main, unique)

g = Group("smtp", mailboxes=["demo", "alice", "bob", "postmaster"])


def check_delivered(srv, msg, qid, sender="a@example.org", rcpt="demo@localhost",
                    proto="ESMTP", peer="127.0.0.1"):
    """The trace headers tern adds at delivery (Return-Path, Delivered-To) and reception
    (Received), and the queue ID in them and in the server log."""
    rp = header_values(msg, "Return-Path")
    check(rp == ["<%s>" % sender], "Return-Path is %r, want ['<%s>']" % (rp, sender))
    dt = header_values(msg, "Delivered-To")
    check(len(dt) == 1 and dt[0].lower() == rcpt, "Delivered-To is %r, want %s" % (dt, rcpt))
    rcv = header_values(msg, "Received")
    check(len(rcv) >= 1, "no Received: header in\n%s" % msg[:600].decode("utf-8", "replace"))
    r = rcv[0]  # the one tern added is on top
    for want in ("tern", "[%s]" % peer, "with %s" % proto, qid):
        check(re.search(r"(^|[\s(;])" + re.escape(want) + r"([\s);]|$)", r),
              "Received: header %r lacks %r" % (r, want))
    check(re.search(r";\s*\w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", r),
          "Received: header %r has no RFC 5322 date after ';'" % r)
    # Trace fields come first, in this order (RFC 5321 4.4: Return-Path at the top).
    names = [l.split(":", 1)[0].lower() for l in headers_of(msg).split("\n")
             if l and l[0] not in " \t"]
    check(names[:1] == ["return-path"], "first header is %r, want Return-Path" % names[:1])
    check("delivered-to" in names[:3] and "received" in names[:3],
          "trace headers not on top: %r" % names[:4])
    # The delivery is logged just after the file lands in new/.
    def log_lines():
        return [l for l in srv.log_text().splitlines() if qid in l]
    poll(lambda: len(log_lines()) >= 2, 5)
    lines = log_lines()
    check(len(lines) >= 2, "queue ID %s appears in %d server log line(s), want acceptance and "
          "delivery\n%s" % (qid, len(lines), srv.log_tail()))


@g.test("swaks-transaction")
def _(srv):
    subj = unique("swaks")
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.port, "--to", "demo@localhost",
                        "--from", "a@example.org", "--helo", "swaks.test",
                        "--header", "Subject: " + subj, "--body", "swaks body " + subj,
                        "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "swaks exited %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    m = re.search(r"<-  250 2\.0\.0 Ok: queued as (\S+)", r.stdout)
    check(m, "swaks transcript has no '250 2.0.0 Ok: queued as QID':\n" + r.stdout)
    qid = m.group(1)
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check_delivered(srv, msg, qid)
    check(b"swaks body " + subj.encode() in body_of(msg), "body lost")
    d = srv.mailbox_dir("demo@localhost")
    check(all(os.path.isdir(os.path.join(d, s)) for s in ("new", "cur", "tmp")),
          "%s is not a Maildir (new/ cur/ tmp/)" % d)
    check(os.listdir(os.path.join(d, "tmp")) == [], "files left in tmp/: %r" % os.listdir(
        os.path.join(d, "tmp")))


@g.test("curl-transaction")
def _(srv):
    subj = unique("curl")
    with tempfile.NamedTemporaryFile("wb", suffix=".eml") as f:
        f.write(message(subj, "curl body\r\n").encode())
        f.flush()
        r = subprocess.run(["curl", "-sS", "-v", "--max-time", "30",
                            "smtp://127.0.0.1:%d/curl.test" % srv.port,
                            "--mail-from", "a@example.org", "--mail-rcpt", "demo@localhost",
                            "-T", f.name], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "curl exited %d\n%s" % (r.returncode, r.stderr))
    m = re.search(r"< 250 2\.0\.0 Ok: queued as (\S+)", r.stderr)
    check(m, "curl -v shows no '250 2.0.0 Ok: queued as QID':\n" + r.stderr)
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check_delivered(srv, msg, m.group(1))


@g.test("smtplib-transaction")
def _(srv):
    subj = unique("smtplib")
    with smtplib.SMTP("127.0.0.1", srv.port, local_hostname="py.test", timeout=20) as s:
        code, _ = s.ehlo()
        check(code == 250, "EHLO %d" % code)
        check(s.has_extn("pipelining") and s.has_extn("size"), "extensions: %r" % s.esmtp_features)
        s.mail("a@example.org")
        code, resp = s.rcpt("demo@localhost")
        check(code == 250, "RCPT %d %r" % (code, resp))
        code, resp = s.data(message(subj).encode())
        check(code == 250, "end of data: %d %r" % (code, resp))
        qid = qid_of(resp.decode())
        check(resp.startswith(b"2.0.0 "), "no enhanced code 2.0.0 in %r" % resp)
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check_delivered(srv, msg, qid)


@g.test("smtplib-sendmail-multiple-rcpts")
def _(srv):
    subj = unique("multi")
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
        refused = s.sendmail("a@example.org", ["demo@localhost", "alice@localhost", "bob@localhost"],
                             message(subj))
        check(refused == {}, "refused: %r" % refused)
    for who in ("demo", "alice", "bob"):
        msg = srv.wait_delivery(who + "@localhost", subj)[0]
        dt = header_values(msg, "Delivered-To")
        check(dt == [who + "@localhost"], "%s: Delivered-To %r" % (who, dt))


@g.test("helo-transaction")
def _(srv):
    subj = unique("helo")
    c = srv.connect()
    c.helo("old.client.test")
    c.mail()
    c.rcpt("demo@localhost")
    qid = c.data(message(subj))
    c.quit()
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check_delivered(srv, msg, qid, proto="SMTP")
    check("old.client.test" in header_values(msg, "Received")[0], "HELO name not in Received:")


@g.test("null-sender")
def _(srv):
    subj = unique("null")
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<>", 250, "2.1.0")
    c.rcpt()
    c.data(message(subj))
    c.quit()
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check(header_values(msg, "Return-Path") == ["<>"], "Return-Path %r" %
          header_values(msg, "Return-Path"))


@g.test("postmaster-without-domain")
def _(srv):
    # RFC 5321 4.1.1.3 / 4.5.1: RCPT TO:<Postmaster> (no domain) must be accepted.
    subj = unique("postmaster")
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.cmd("RCPT TO:<Postmaster>", 250, "2.1.5")
    c.data(message(subj))
    c.quit()
    srv.wait_delivery("postmaster@localhost", subj)


@g.test("ehlo-extensions")
def _(srv):
    c = srv.connect()
    check(re.match(r"220 \S+", c.greeting.lines[0]), "greeting %r" % c.greeting.text)
    r = c.ehlo()
    check(len(r.lines) > 1, "EHLO reply is one line: %r" % r.text)
    kw = {}
    for l in r.lines[1:]:
        parts = l[4:].split()
        kw[parts[0].upper()] = parts[1:]
    for want in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING",
                 "BINARYMIME", "DSN"):
        check(want in kw, "EHLO does not list %s: %r" % (want, r.text))
    check(kw["SIZE"] == [str(srv.opts["max_message_size"])],
          "SIZE %r, want %s" % (kw["SIZE"], srv.opts["max_message_size"]))
    check(not re.match(r"250[ -]\d\.\d", r.lines[0]), "EHLO reply carries an enhanced code")
    c.quit()


@g.test("helo-reply")
def _(srv):
    c = srv.connect()
    r = c.helo()
    check(len(r.lines) == 1, "HELO reply is multi-line: %r" % r.text)
    c.cmd("MAIL FROM:<a@example.org> SIZE=100", 555, "5.5.4")  # parameters need EHLO
    c.mail()
    c.rcpt()
    c.cmd("RSET", 250, "2.0.0")
    c.quit()


@g.test("pipelining")
def _(srv):
    s1, s2 = unique("pipe1"), unique("pipe2")
    c = srv.connect()
    c.ehlo()
    # RFC 2920: MAIL, RCPT... and DATA in one send; replies in order, DATA's 354 last.
    c.send("RSET\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<demo@localhost>\r\n"
           "RCPT TO:<nosuchuser@localhost>\r\nRCPT TO:<alice@localhost>\r\nNOOP\r\nDATA\r\n")
    c.expect(c.read(), 250, "2.0.0")
    c.expect(c.read(), 250, "2.1.0")
    c.expect(c.read(), 250, "2.1.5")
    c.expect(c.read(), 550, "5.1.1")
    c.expect(c.read(), 250, "2.1.5")
    c.expect(c.read(), 250, "2.0.0")
    c.expect(c.read(), 354)
    # End of data and the whole next transaction in one send.
    c.send(message(s1) + "\r\n.\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
    q1 = qid_of(c.expect(c.read(), 250, "2.0.0").text)
    c.expect(c.read(), 250, "2.1.0")
    c.expect(c.read(), 250, "2.1.5")
    c.expect(c.read(), 354)
    c.send(message(s2) + "\r\n.\r\nQUIT\r\n")
    q2 = qid_of(c.expect(c.read(), 250, "2.0.0").text)
    c.expect(c.read(), 221, "2.0.0")
    check(c.at_eof(), "not closed after QUIT")
    check(q1 != q2, "two messages got the same queue ID %s" % q1)
    srv.wait_delivery("demo@localhost", s1)
    srv.wait_delivery("alice@localhost", s1)
    check(not srv.find("nosuchuser@localhost", s1), "delivered to a refused recipient")
    m2 = srv.wait_delivery("bob@localhost", s2)[0]
    check(header_values(m2, "Return-Path") == ["<b@example.org>"], "second transaction's sender")
    check(not srv.find("demo@localhost", s2), "second message went to the first's recipients")


@g.test("pipelining-many-commands-one-packet")
def _(srv):
    c = srv.connect()
    n = 200
    c.send("EHLO client.test\r\n" + "NOOP\r\n" * n + "RSET\r\nQUIT\r\n")
    c.expect(c.read(), 250)
    for _ in range(n):
        c.expect(c.read(), 250, "2.0.0")
    c.expect(c.read(), 250, "2.0.0")
    c.expect(c.read(), 221, "2.0.0")
    check(c.at_eof(), "not closed after QUIT")


def smtp_bdat(srv, path, *args, rcpt="demo@localhost"):
    cmd = ["/usr/bin/python3", os.path.join(TESTKIT, "smtp-bdat")] + list(args) + [
        "127.0.0.1", str(srv.port), "a@example.org", rcpt, path]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "smtp-bdat %s exited %d\n%s%s" % (" ".join(args), r.returncode,
                                                               r.stdout, r.stderr))
    m = re.search(r"<-  250 2\.0\.0 Ok: queued as (\S+)", r.stdout)
    check(m, "no '250 2.0.0 Ok: queued as QID' in:\n" + r.stdout)
    return m.group(1), r.stdout


def bdat_file(subj, size, eightbit=False):
    lines = []
    i = 0
    filler = "caf\u00e9 \u2603 " if eightbit else "line "
    while sum(len(l) + 2 for l in lines) < size:
        lines.append("%s%05d %s" % (filler, i, "x" * 60))
        i += 1
    data = (message(subj, "\r\n".join(lines) + "\r\n")).encode()
    f = tempfile.NamedTemporaryFile("wb", suffix=".eml", delete=False)
    f.write(data)
    f.close()
    return f.name, data


@g.test("bdat-chunks")
def _(srv):
    subj = unique("bdat")
    path, data = bdat_file(subj, 20000)
    try:
        qid, out = smtp_bdat(srv, path, "--chunk", "1000")
    finally:
        os.unlink(path)
    check(out.count("BDAT ") >= 20, "fewer chunks than expected")
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check(norm(msg).endswith(norm(data)), "delivered content differs from what BDAT sent")
    check_delivered(srv, msg, qid)


@g.test("bdat-pipelined")
def _(srv):
    subj = unique("bdatpipe")
    path, data = bdat_file(subj, 50000, eightbit=True)
    try:
        smtp_bdat(srv, path, "--chunk", "777", "--pipeline")
    finally:
        os.unlink(path)
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check(norm(msg).endswith(norm(data)), "delivered content differs from what BDAT sent")


@g.test("bdat-single-last-chunk")
def _(srv):
    subj = unique("bdat1")
    path, data = bdat_file(subj, 100)
    try:
        smtp_bdat(srv, path, "--chunk", "100000")
    finally:
        os.unlink(path)
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check(norm(msg).endswith(norm(data)), "delivered content differs")


@g.test("bdat-binarymime")
def _(srv):
    # RFC 3030 3: BODY=BINARYMIME content is sent only with BDAT and arrives octet for octet:
    # NUL, bare CR, bare LF, lone dots and 8-bit octets included.
    subj = unique("binary")
    payload = bytes(range(256)) * 40 + b"\n.\r\n.\n\r\x00end"
    head = ("From: <a@example.org>\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            % subj).encode()
    data = head + payload
    c = srv.connect()
    c.ehlo()
    c.mail(params="BODY=BINARYMIME")
    c.rcpt()
    c.cmd("DATA", 503, "5.5.1")            # BINARYMIME needs BDAT; the transaction stays
    cut = [0, 100, 3000, 3001, len(data)]
    for i in range(len(cut) - 1):
        chunk = data[cut[i]:cut[i + 1]]
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        c.expect(c.read(), 250, "2.0.0")
    c.send(b"BDAT 0 LAST\r\n")
    qid = qid_of(c.expect(c.read(), 250, "2.0.0").text)
    c.quit()
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    # Maildir stores LF line ends, so CRLF in the content becomes LF; everything else (NUL,
    # bare CR, bare LF, 8-bit octets) must arrive unchanged.
    check(msg.endswith(norm(data)), "binary content changed in delivery (%d octets delivered, "
          "sent %d, %d after CRLF->LF)" % (len(msg), len(data), len(norm(data))))
    check_delivered(srv, msg, qid)


@g.test("bdat-errors")
def _(srv):
    c = srv.connect()
    c.ehlo()
    # BDAT outside a transaction: the chunk is still read (RFC 3030 2), then 503.
    c.send(b"BDAT 5\r\nhello")
    c.expect(c.read(), 503, "5.5.1")
    c.cmd("NOOP", 250, "2.0.0")
    c.mail()
    c.send(b"BDAT 8 LAST\r\nNOOP\r\n\r\n")    # before RCPT: 503, and the octets are not commands
    c.expect(c.read(), 503, "5.5.1")
    c.cmd("NOOP", 250, "2.0.0")
    for bad in ("BDAT", "BDAT abc", "BDAT -1", "BDAT 5 FIRST", "BDAT 5 LAST extra",
                "BDAT 99999999999999999999999"):
        c.mail()
        c.rcpt()
        c.cmd(bad, 501, "5.5.4")
        c.cmd("RSET", 250, "2.0.0")
    # DATA after BDAT in one transaction is out of sequence.
    c.mail()
    c.rcpt()
    c.send(b"BDAT 3\r\nabc")
    c.expect(c.read(), 250, "2.0.0")
    c.cmd("DATA", 503, "5.5.1")
    c.cmd("RSET", 250, "2.0.0")
    c.quit()


@g.test("dot-stuffing")
def _(srv):
    subj = unique("dots")
    # As sent on the wire (RFC 5321 4.5.2: the client doubles a leading dot) ...
    wire = ("Subject: %s\r\n\r\n..hello\r\n...\r\n..\r\n. \r\nmid.dle\r\n.a.b.\r\nlast\r\n" % subj)
    # ... and as it must land in the Maildir.
    want = norm(".hello\r\n..\r\n.\r\n \r\nmid.dle\r\na.b.\r\nlast\r\n")
    # ". " unstuffs to " "; ".a.b." to "a.b." (only the first dot is removed).
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt()
    c.data(wire)
    c.quit()
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check(body_of(msg) == want, "body after unstuffing is %r, want %r" % (body_of(msg), want))


@g.test("dot-stuffing-smtplib")
def _(srv):
    subj = unique("dots2")
    body = ".hello\r\n.\r\n..\r\nend\r\n"
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
        s.sendmail("a@example.org", ["demo@localhost"], "Subject: %s\r\n\r\n%s" % (subj, body))
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check(body_of(msg) == norm(body), "body %r, want %r" % (body_of(msg), body))


@g.test("smtputf8-8bitmime")
def _(srv):
    subj = unique("utf8")
    body = "Gr\u00fc\u00dfe, \u65e5\u672c, \u2603\r\n"
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<j\u00f6rg@example.org> SMTPUTF8 BODY=8BITMIME", 250, "2.1.0")
    c.rcpt()
    qid = c.data(("Subject: %s\r\n\r\n%s" % (subj, body)).encode("utf-8"))
    c.quit()
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check(body_of(msg) == norm(body), "8-bit body changed: %r" % body_of(msg))
    check_delivered(srv, msg, qid, sender="j\u00f6rg@example.org", proto="UTF8SMTP")


@g.test("non-ascii-sender-needs-smtputf8")
def _(srv):
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<j\u00f6rg@example.org>", 553, "5.6.7")
    c.quit()


@g.test("dsn-parameters")
def _(srv):
    subj = unique("dsn")
    c = srv.connect()
    c.ehlo()
    c.mail(params="RET=HDRS ENVID=QQ314159")
    c.cmd("RCPT TO:<demo@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;demo@localhost", 250,
          "2.1.5")
    c.data(message(subj))
    c.quit()
    srv.wait_delivery("demo@localhost", subj)


@g.test("case-insensitive-commands-and-recipients")
def _(srv):
    subj = unique("case")
    c = srv.connect()
    c.cmd("ehlo client.test", 250)
    c.cmd("mail from:<a@example.org>", 250, "2.1.0")
    c.cmd("rcpt to:<DEMO@LocalHost>", 250, "2.1.5")
    c.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")  # the same mailbox: delivered once
    c.data(message(subj))
    c.quit()
    srv.wait_delivery("demo@localhost", subj)


@g.test("several-transactions-one-session")
def _(srv):
    subs = [unique("seq") for _ in range(5)]
    c = srv.connect()
    c.ehlo()
    qids = []
    for s in subs:
        c.mail()
        c.rcpt()
        qids.append(c.data(message(s)))
    c.quit()
    check(len(set(qids)) == 5, "queue IDs not unique: %r" % qids)
    for s in subs:
        srv.wait_delivery("demo@localhost", s)


if __name__ == "__main__":
    run_main()
