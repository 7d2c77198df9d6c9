#!/usr/bin/python3
"""test_abuse.py - limits against abusive clients (docs/configuration.md, docs/security.md).

- slowloris: a command line trickled one octet at a time still ends at timeout_command with
  421 4.4.2 (the deadline is not renewed by each octet, only by a whole command), before and
  after EHLO; a TLS ClientHello trickled to an smtps listener is cut off the same way;
- max_connection_rate: the connection over the limit per minute from one address gets
  421 4.7.0 and is closed, the ones before it were served (two workers: the count is shared);
- max_connections_per_ip holds across workers; the connections of a worker killed with
  SIGKILL stop counting;
- max_errors: a client sending nothing but invalid commands gets 421 4.7.0 after N errors;
- max_header_size (552 5.3.4) and max_header_count (554 5.6.0), with DATA and BDAT; folded
  continuation lines do not count as fields; a message within the limits is delivered.

    /usr/bin/python3 tests/integration/test_abuse.py BUILD_DIR [name-filter...]
"""
import os
import signal
import socket
import time

from ternlib import Group, check, poll, run_main, unique

slow = Group("slowloris", timeout_command=2, workers=1)


def trickle(c, line, gap=0.3):
    """Send line one octet per gap seconds; return the reply that interrupted it, or None if
    the whole line went out without one."""
    for i, ch in enumerate(line):
        try:
            c.sock.sendall(ch.encode())
        except OSError:
            break
        c.sock.settimeout(gap)
        try:
            data = c.sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            data = b""
        c.sock.settimeout(15)
        if data:
            return data.decode("utf-8", "replace"), i
        return "", i            # closed without a reply
    return None, len(line)


@slow.test("slowloris-before-ehlo")
def _(srv):
    c = srv.connect()
    line = "EHLO " + "a" * 60 + "\r\n"     # 67 octets, 0.3 s each: about 20 s in all
    got, sent = trickle(c, line)
    check(got is not None, "the whole trickled line went out with no timeout (%d octets)" % sent)
    check(got.startswith("421 4.4.2"), "want 421 4.4.2 while trickling, got %r" % got)
    check(sent < len(line) - 1, "the reply came only after the line was complete")
    check(c.at_eof(5), "connection still open after 421")


@slow.test("slowloris-after-ehlo")
def _(srv):
    c = srv.connect()
    c.ehlo()
    c.mail()
    line = "RCPT TO:<" + "x" * 60 + "@localhost>\r\n"
    got, sent = trickle(c, line)
    check(got is not None and got.startswith("421 4.4.2"),
          "want 421 4.4.2 while trickling RCPT, got %r after %d octets" % (got, sent))
    check(c.at_eof(5), "connection still open after 421")


@slow.test("whole-commands-renew-the-timeout")
def _(srv):
    # The deadline is per command: complete commands, each sent slowly but well within the
    # limit, keep the session alive past several timeouts.
    c = srv.connect()
    c.ehlo()
    for _ in range(4):
        got, _ = trickle(c, "NOOP\r\n", gap=0.25)
        check(got is not None and got.startswith("250"), "NOOP answered %r" % got)
    c.quit()


def client_hello():
    """The first flight of a real TLS client (Python's ssl over memory BIOs)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname="mx.tern.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outg.read()


def tls_slow_group():
    import tempfile
    from ternlib import mkcerts
    pki = mkcerts(tempfile.mkdtemp(prefix="tern-it-abuse-pki."), "mx.tern.test")
    return Group("slowloris-tls", timeout_command=2, workers=1, listeners={"smtps": "smtps"},
                 tls_certificate="%s/server-chain.crt %s/server.key" % (pki, pki))


slow_tls = tls_slow_group()


@slow_tls.test("slowloris-tls-handshake")
def _(srv):
    hello = client_hello()
    check(len(hello) > 100, "no ClientHello made: %r" % hello[:40])
    s = socket.create_connection(("127.0.0.1", srv.ports["smtps"]), timeout=15)
    closed_at = None
    for i in range(len(hello)):
        try:
            s.sendall(hello[i:i + 1])
        except OSError:
            closed_at = i
            break
        s.settimeout(0.3)
        try:
            data = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            data = b""
        if not data:
            closed_at = i
            break
    s.close()
    check(closed_at is not None, "a ClientHello trickled over %d octets kept the connection "
          "open past timeout_command" % len(hello))
    check(closed_at < len(hello) - 1, "closed only after the whole ClientHello")
    check("TLS handshake failed" in srv.log_text() and "timeout" in srv.log_text(),
          "handshake timeout not logged")


rate = Group("rate", workers=2, max_connection_rate=5)


@rate.test("connection-rate-per-address")
def _(srv):
    for i in range(5):
        c = srv.connect()
        c.ehlo()
        c.quit()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    check(data.startswith(b"421 4.7.0"), "6th connection in a minute got %r, want 421 4.7.0" % data)
    check(s.recv(4096) == b"", "connection left open after the 421")
    s.close()
    check("reason=max_connection_rate" in srv.log_text(), "refusal not logged")


def greeting(s):
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def worker_pids(srv):
    pid = srv.proc.pid
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        kids = [int(x) for x in f.read().split()]
    out = []
    for k in kids:
        try:
            with open("/proc/%d/comm" % k) as f:
                if f.read().strip() == "tern-smtp":
                    out.append(k)
        except OSError:
            pass
    return out


perip = Group("per-ip-shared", workers=2, max_connections_per_ip=3)


@perip.test("per-address-limit-across-workers")
def _(srv):
    # Whichever worker takes each connection, the fourth from one address is refused.
    held = []
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        g = greeting(s)
        check(g.startswith(b"220"), "connection %d got %r" % (i + 1, g))
        held.append(s)
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        g = greeting(s)
        check(g.startswith(b"421 4.7.0"), "connection over the limit got %r" % g)
        s.close()
    held.pop().close()
    check(poll(lambda: greeting(socket.create_connection(("127.0.0.1", srv.port), timeout=15))
               .startswith(b"220"), 10), "the freed slot was not reusable")
    for s in held:
        s.close()


@perip.test("dead-worker-connections-forgotten")
def _(srv):
    # The connections of a worker killed with SIGKILL no longer count.
    time.sleep(0.5)                       # the previous test's connections are closed
    held = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        check(greeting(s).startswith(b"220"), "not served")
        held.append(s)
    old = worker_pids(srv)
    for p in old:
        os.kill(p, signal.SIGKILL)
    for s in held:
        s.close()
    check(poll(lambda: len([p for p in worker_pids(srv) if p not in old]) == 2, 20),
          "workers not restarted")
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        g = greeting(s)
        check(g.startswith(b"220"), "connection %d after the workers died got %r" % (i + 1, g))
        held.append(s)
    for s in held:
        s.close()


errs = Group("errors", max_errors=5)


@errs.test("invalid-commands-dropped-after-max-errors")
def _(srv):
    c = srv.connect()
    for i in range(4):
        c.cmd("XYZZY%d" % i, 500, "5.5.2")
    c.send("GARBAGE\r\n")
    r = c.read()
    c.expect(r, 500, "5.5.2")
    r = c.read()
    c.expect(r, 421, "4.7.0")
    check(c.at_eof(5), "connection open after 421 4.7.0\n" + c.dump())


hdr = Group("headers", max_header_size="2k", max_header_count=20)


def header_msg(subj, fields=5, pad=0, folded=0):
    h = ["Subject: %s" % subj, "From: a@example.org"]
    h += ["X-Field-%d: value %d" % (i, i) for i in range(fields - 2)]
    if folded:
        h.append("X-Folded: first" + "".join("\r\n continued %d" % i for i in range(folded)))
    if pad:
        h.append("X-Pad: " + "p" * pad)
    return "\r\n".join(h) + "\r\n\r\nbody\r\n"


def send_data(srv, body, code, esc):
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt()
    c.cmd("DATA", 354)
    c.send(body.replace("\r\n.", "\r\n..") + ".\r\n")
    r = c.read()
    c.expect(r, code, esc)
    c.cmd("NOOP", 250)          # the session goes on after a refused message
    c.quit()
    return r


@hdr.test("header-within-limits-delivered")
def _(srv):
    subj = unique("hdr-ok")
    send_data(srv, header_msg(subj, fields=18, folded=30, pad=900), 250, "2.0.0")  # 20 fields
    srv.wait_delivery("demo@localhost", subj)


@hdr.test("header-too-big-552")
def _(srv):
    subj = unique("hdr-big")
    r = send_data(srv, header_msg(subj, fields=5, pad=2100), 552, "5.3.4")
    check("header" in r.text.lower(), "reply does not say what was too big: %r" % r.text)
    time.sleep(1)
    check(not srv.find("demo@localhost", subj), "refused message was delivered")


@hdr.test("too-many-header-fields-554")
def _(srv):
    subj = unique("hdr-many")
    send_data(srv, header_msg(subj, fields=21), 554, "5.6.0")
    time.sleep(1)
    check(not srv.find("demo@localhost", subj), "refused message was delivered")


@hdr.test("big-body-is-not-header")
def _(srv):
    # Past the empty line nothing counts: a body with many "Field: value" lines is fine.
    subj = unique("hdr-body")
    body = header_msg(subj) + "".join("Looks-Like: a header %d\r\n" % i for i in range(200))
    send_data(srv, body, 250, "2.0.0")
    srv.wait_delivery("demo@localhost", subj)


@hdr.test("header-limits-with-bdat")
def _(srv):
    subj = unique("hdr-bdat")
    body = header_msg(subj, fields=30).encode()
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt()
    half = len(body) // 2
    c.send(b"BDAT %d\r\n" % half + body[:half])
    c.expect(c.read(), 250)
    c.send(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
    c.expect(c.read(), 554, "5.6.0")
    c.quit()


if __name__ == "__main__":
    run_main()
