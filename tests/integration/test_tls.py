#!/usr/bin/python3
"""test_tls.py - tern's TLS: STARTTLS (RFC 3207) and implicit TLS (RFC 8314) with real clients.

swaks --tls/--tlsc, openssl s_client, curl --ssl-reqd and smtps://, smtplib and Python's ssl
deliver over TLS, verified against a throwaway test CA (testkit/mkcerts); the Received: header
and the log name the TLS version and cipher. TLS 1.0/1.1 and weak TLS 1.2 suites are refused
(RFC 8996); SNI picks the certificate (RFC 6066 3); submission requires TLS before MAIL (530
5.7.0); after STARTTLS the session forgets everything (RFC 3207 4.2) and plaintext pipelined
behind STARTTLS is dropped, never executed (CVE-2011-0411); failed and stalled handshakes are
logged and the server keeps serving; SIGHUP loads a new certificate while an older session
goes on; broken TLS configurations are refused at startup. See docs/tls.md.

    /usr/bin/python3 tests/integration/test_tls.py BUILD_DIR [name-filter...]
"""
import atexit
import hashlib
import os
import re
import select
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

from ternlib import (SANITIZER_RE, TESTKIT, Group, Smtp, TestFailure, check, free_port,
                     header_values, message, mkcerts, norm, poll, qid_of, run_main,
                     tls_client_context, unique, wait_listen)
from ternlib import run_tool as run  # noqa: E402

HOST = "mx.tern.test"            # the harness's hostname, the default certificate's CN
OTHER = "mail.other.test"        # the second certificate (SNI), also *.wild.test

# ---- the test PKI: one CA, three leaves; another CA the server is not signed by ------------

PKI = tempfile.mkdtemp(prefix="tern-it-tls-pki.", dir=os.environ.get("TERN_IT_TMP") or None)
os.chmod(PKI, 0o755)
if not os.environ.get("TERN_IT_KEEP"):
    atexit.register(shutil.rmtree, PKI, True)
A = os.path.join(PKI, "a")        # default: mx.tern.test, localhost, 127.0.0.1 (EC P-256)
B = os.path.join(PKI, "b")        # SNI: mail.other.test, *.wild.test (RSA 2048), same CA
ROGUE = os.path.join(PKI, "rogue")  # another CA and leaf, trusted by nobody here
_pki_error = None
try:
    mkcerts(A, HOST, "localhost", "127.0.0.1")
    mkcerts(B, OTHER, "*.wild.test", keytype="rsa", ca_from=A)
    mkcerts(ROGUE, HOST, "127.0.0.1")
except Exception as e:  # noqa: BLE001 - reported by every test below
    _pki_error = "cannot make the test PKI: %s" % e
CA = os.path.join(A, "ca.crt")


def cert_line(d):
    return "%s %s" % (os.path.join(d, "server-chain.crt"), os.path.join(d, "server.key"))


def need_pki():
    check(_pki_error is None, _pki_error or "")


def ctx(cafile=CA, **kw):
    return tls_client_context(cafile, **kw)


def log_lines(srv, pattern, since=0):
    text = srv.log_text()[since:]
    return [l for l in text.splitlines() if re.search(pattern, l)]


def wait_log(srv, pattern, since=0, count=1, timeout=10):
    """Wait until the server log (from character offset since) has count lines matching."""
    got = poll(lambda: len(log_lines(srv, pattern, since)) >= count, timeout)
    check(got, "no %s line%s matching %r in the server log\n%s" % (
        count, "s" if count > 1 else "", pattern, srv.log_tail()))
    return log_lines(srv, pattern, since)


def no_crash(srv, since=0):
    bad = log_lines(srv, r"crashed \(|exited unexpectedly", since)
    check(not bad, "a tern process died:\n" + "\n".join("    " + l for l in bad))


TLS_DESC = r"(TLSv1\.[23]) with cipher ([A-Z0-9_-]+) \((\d+)/(\d+) bits\)"


def check_tls_received(msg, version=None, proto="ESMTPS"):
    """tern's Received: header (the top one) says "with ESMTPS (TLSv1.3 with cipher ...)"."""
    rcv = header_values(msg, "Received")
    check(rcv, "no Received: header")
    m = re.search(r"\bwith %s \(%s\)" % (proto, TLS_DESC), rcv[0])
    check(m, "Received: header %r lacks 'with %s (TLSv1.x with cipher NAME (n/n bits))'" % (
        rcv[0], proto))
    if version:
        check(m.group(1) == version, "Received: says %s, the client negotiated %s" % (
            m.group(1), version))
    return m


def check_tls_logged(srv, since, version=None, cipher=None):
    lines = wait_log(srv, r"tls client=\[127\.0\.0\.1\] " + TLS_DESC, since)
    if version or cipher:
        want = r"tls client=\[127\.0\.0\.1\] %s with cipher %s " % (
            re.escape(version or "") or r"\S+", re.escape(cipher or "") or r"\S+")
        check(any(re.search(want, l) for l in lines), "no log line %r among:\n%s" % (
            want, "\n".join("    " + l for l in lines)))


# ---- openssl s_client ----------------------------------------------------------------------

def s_client(port, *args, starttls=True, stdin=b"QUIT\n", timeout=30):
    """openssl s_client against 127.0.0.1:port. Once the server has finished the handshake,
    sends stdin (CRLF line ends) and waits for the server to close (-ign_eof). Returns (exit
    status, output).

    "Finished" means s_client printed its session summary and, for TLS 1.3 (where the client
    is done before the server has read its Finished), the server's session tickets arrived:
    so the command never travels with the client's Finished, a case that has its own test
    (tls13-command-with-finished)."""
    # stdbuf: s_client's stdout is a stdio stream, block-buffered into a pipe
    cmd = ["stdbuf", "-oL", "openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-crlf",
           "-ign_eof"]
    if starttls:
        cmd += ["-starttls", "smtp", "-name", "client.test"]
    cmd += list(args)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = b""
    deadline = time.monotonic() + timeout
    sent = False
    done_at = None
    fd = p.stdout.fileno()
    try:
        while True:
            left = deadline - time.monotonic()
            check(left > 0, "%s did not finish within %ss:\n%s" % (
                " ".join(cmd), timeout, out.decode("utf-8", "replace")))
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not r:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
            # s_client prints "SSL handshake has read N bytes" and "---" after the handshake;
            # on smtps the 220 greeting comes next (read it before sending).
            after = out.split(b"SSL handshake has read", 1)[1] if b"SSL handshake has read" \
                in out else b""
            if after and not done_at:
                done_at = time.monotonic()
            # TLS 1.3: the client is done after sending its Finished, before the server has
            # read it; the server's session tickets show that it has.
            tls13 = b", TLSv1.3, Cipher is" in after
            ready = b"\n---\n" in after and (
                not tls13 or b"New Session Ticket arrived" in after
                or time.monotonic() - done_at > 2)
            if not sent and ready and (starttls or re.search(rb"^2\d\d .*\n", after, re.M)):
                sent = True
                try:
                    p.stdin.write(stdin)
                    p.stdin.close()
                except BrokenPipeError:
                    pass
        if not p.stdin.closed:
            try:
                p.stdin.close()
            except BrokenPipeError:
                pass
        rc = p.wait(max(1, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc, out.decode("utf-8", "replace")


def subject_cn(out):
    m = re.search(r"^subject=.*?CN ?= ?([^,/\n]+)", out, re.M)
    return m.group(1).strip() if m else None


def negotiated(out):
    """(protocol, cipher) from s_client's session summary, or (None, None). "New, X, Cipher
    is Y" names the cipher's own version; the session's is on the "Protocol  :" line
    (printed for TLS 1.2, and for TLS 1.3 only with the session tickets)."""
    m = re.search(r"^New, (\S+), Cipher is (\S+)", out, re.M)
    if not m or m.group(2) == "(NONE)":
        return None, None
    p = re.search(r"^\s+Protocol\s*: (\S+)", out, re.M)
    return (p.group(1) if p else m.group(1).rstrip(",")), m.group(2)


# ---- the main group: one tern with STARTTLS, smtps, submission and a plain listener --------

g = Group("tls", mailboxes=["demo", "alice"],
          tls_certificate=[cert_line(A), cert_line(B)],
          listeners={"smtps": "smtps", "sub": "submission", "plain": "smtp no-starttls"})


@g.test("swaks-starttls-verified")
def _(srv):
    need_pki()
    subj = unique("swaks-tls")
    mark = len(srv.log_text())
    rc, out = run(["swaks", "--server", "127.0.0.1:%d" % srv.port, "--tls", "--tls-verify",
                   "--tls-ca-path", CA, "--to", "demo@localhost", "--from", "a@example.org",
                   "--helo", "swaks.test", "--header", "Subject: " + subj,
                   "--body", "swaks tls body " + subj, "--timeout", "20"])
    check(rc == 0, "swaks --tls exited %d\n%s" % (rc, out))
    m = re.search(r"=== TLS started with cipher (TLSv1\.[23]):(\S+):", out)
    check(m, "swaks did not start TLS:\n" + out)
    check(re.search(r"~> EHLO swaks\.test", out), "no EHLO inside TLS in:\n" + out)
    q = re.search(r"<~  250 2\.0\.0 Ok: queued as (\S+)", out)
    check(q, "no '250 2.0.0 Ok: queued as QID' over TLS in:\n" + out)
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    rm = check_tls_received(msg, m.group(1))
    check(rm.group(2) == m.group(2), "Received: names cipher %s, swaks used %s" % (
        rm.group(2), m.group(2)))
    check(q.group(1) in header_values(msg, "Received")[0], "queue ID not in Received:")
    check_tls_logged(srv, mark, m.group(1), m.group(2))
    # The same check against a CA that did not sign the certificate must fail: the
    # verification above was real.
    rc, out = run(["swaks", "--server", "127.0.0.1:%d" % srv.port, "--tls", "--tls-verify",
                   "--tls-ca-path", os.path.join(ROGUE, "ca.crt"), "--to", "demo@localhost",
                   "--from", "a@example.org", "--quit-after", "TLS", "--timeout", "20"])
    check(rc != 0 and "verify failed" in out,
          "swaks verified tern's certificate against an unrelated CA (exit %d)\n%s" % (rc, out))


@g.test("swaks-tlsc-smtps")
def _(srv):
    need_pki()
    subj = unique("swaks-tlsc")
    mark = len(srv.log_text())
    rc, out = run(["swaks", "--server", "127.0.0.1:%d" % srv.ports["smtps"], "--tlsc",
                   "--tls-verify", "--tls-ca-path", CA, "--to", "demo@localhost",
                   "--from", "a@example.org", "--helo", "tlsc.test",
                   "--header", "Subject: " + subj, "--timeout", "20"])
    check(rc == 0, "swaks --tlsc exited %d\n%s" % (rc, out))
    m = re.search(r"=== TLS started with cipher (TLSv1\.[23]):(\S+):", out)
    check(m, "swaks did not start TLS:\n" + out)
    check(re.search(r"<~  220 ", out), "no greeting over TLS:\n" + out)
    check(not re.search(r"STARTTLS", out), "STARTTLS offered or used on smtps:\n" + out)
    check(re.search(r"<~  250 2\.0\.0 Ok: queued as", out), "not queued:\n" + out)
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check_tls_received(msg, m.group(1))
    check_tls_logged(srv, mark, m.group(1), m.group(2))


@g.test("openssl-starttls-verify")
def _(srv):
    need_pki()
    for label, starttls in (("main", True), ("smtps", False)):
        port = srv.ports[label]
        rc, out = s_client(port, "-verify_return_error", "-CAfile", CA, "-verify_hostname", HOST,
                           "-servername", HOST, starttls=starttls)
        # (the exit status is not checked: s_client exits 1 when the server closes without
        # close_notify, which close-notify-after-quit tests)
        check("Verify return code: 0 (ok)" in out, "%s: verification failed (exit %d)\n%s" % (
            label, rc, out))
        check(subject_cn(out) == HOST, "%s: certificate subject %r, want CN %s" % (
            label, subject_cn(out), HOST))
        proto, cipher = negotiated(out)
        check(proto == "TLSv1.3", "%s: negotiated %s %s, want TLSv1.3 by default\n%s" % (
            label, proto, cipher, out))
        # The session went on over TLS: QUIT got its 221 and the server closed.
        check(re.search(r"^221 2\.0\.0", out, re.M), "%s: no 221 to QUIT over TLS\n%s" % (
            label, out))
        # and the chain is sent: leaf + CA (server-chain.crt)
        check(re.search(r"^ 1 s:.*CN ?= ?Test CA", out, re.M),
              "%s: the chain lacks the CA certificate\n%s" % (label, out))
    # A client that trusts another CA refuses the certificate: -verify_return_error matters.
    rc, out = s_client(srv.port, "-verify_return_error", "-CAfile", os.path.join(ROGUE, "ca.crt"))
    check(rc != 0 and "certificate verify failed" in out and "Verify return code: 0 " not in out
          and not re.search(r"^221 ", out, re.M),
          "s_client accepted tern's certificate with an unrelated CA\n" + out)


def tls11_control(args):
    """The s_client options used for TLS 1.0/1.1 must work against a server that allows
    them (openssl s_server), or a refusal by tern would prove nothing."""
    port = free_port()
    srv = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                            "-naccept", "1", "-cert", os.path.join(A, "server.crt"),
                            "-key", os.path.join(A, "server.key"),
                            "-cipher", "DEFAULT:@SECLEVEL=0", "-quiet"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        check(wait_listen(port, 10), "openssl s_server did not listen")
        rc, out = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + args,
                      input=b"", timeout=20)
        return negotiated(out)
    finally:
        srv.kill()
        srv.wait()


OLD = {"TLSv1.1": ["-tls1_1"], "TLSv1": ["-tls1"]}
OLD_CIPHERS = ["-cipher", "DEFAULT:@SECLEVEL=0"]   # OpenSSL 3 offers TLS < 1.2 only at level 0


@g.test("tls-versions")
def _(srv):
    need_pki()
    for name, flag in OLD.items():
        proto, _ = tls11_control(flag + OLD_CIPHERS)
        check(proto == name, "control: s_client %s could not even talk %s to openssl s_server "
              "(got %s): this machine's OpenSSL cannot test it" % (flag[0], name, proto))
    for label, starttls in (("main", True), ("smtps", False)):
        port = srv.ports[label]
        for flag, want in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            rc, out = s_client(port, flag, "-verify_return_error", "-CAfile", CA, starttls=starttls)
            proto, cipher = negotiated(out)
            check(proto == want, "%s %s: got %s (exit %d)\n%s" % (label, flag, proto, rc, out))
            if want == "TLSv1.2":
                check(re.match(r"(ECDHE|DHE)-.*(GCM|CHACHA20)", cipher),
                      "%s: TLS 1.2 cipher %s is not forward-secret AEAD" % (label, cipher))
            check(re.search(r"^221 2\.0\.0", out, re.M), "%s %s: no 221 to QUIT\n%s" % (
                label, flag, out))
        for name, flag in OLD.items():
            mark = len(srv.log_text())
            rc, out = s_client(port, *(flag + OLD_CIPHERS), starttls=starttls)
            proto, cipher = negotiated(out)
            check(rc != 0 and proto is None, "%s: %s was accepted (%s %s)\n%s" % (
                label, name, proto, cipher, out))
            wait_log(srv, r"TLS handshake failed client=\[127\.0\.0\.1\]: .*unsupported protocol",
                     mark)
    no_crash(srv)


@g.test("tls-version-alert")
def _(srv):
    # RFC 8446 4.1.1 / RFC 5246 7.2: a server refusing the client's version says so with a
    # protocol_version alert (70) rather than just closing, on both kinds of listener.
    need_pki()
    for label, starttls in (("smtps", False), ("main", True)):
        rc, out = s_client(srv.ports[label], "-tls1_1", *OLD_CIPHERS, starttls=starttls)
        check(rc != 0, "%s: TLS 1.1 accepted\n%s" % (label, out))
        check("alert protocol version" in out,
              "%s: TLS 1.1 refused without a protocol_version alert (the client saw: %s)\n%s" % (
                  label, "; ".join(l.strip() for l in out.splitlines() if "error" in l)[:300],
                  out))


@g.test("tls12-weak-ciphers-refused")
def _(srv):
    need_pki()
    # Static RSA key exchange (no forward secrecy), CBC, SHA-1, 3DES, RC4, NULL, anonymous: the
    # default TLS 1.2 list has none of them. Tried with the EC certificate (default) and the
    # RSA one (SNI), so that RSA key exchange is possible at all.
    weak = ["AES128-SHA:AES256-SHA:AES128-GCM-SHA256:AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:"
            "ECDHE-RSA-AES256-SHA384:DHE-RSA-AES128-SHA256",
            "DES-CBC3-SHA:ECDHE-RSA-DES-CBC3-SHA", "RC4", "NULL-SHA256:eNULL", "aNULL",
            "CAMELLIA:ARIA:SEED"]
    tried = 0
    for sni in (HOST, OTHER):
        for cipher in weak:
            mark = len(srv.log_text())
            rc, out = s_client(srv.ports["smtps"], "-tls1_2", "-servername", sni,
                               "-cipher", cipher + ":@SECLEVEL=0", starttls=False)
            if "no cipher match" in out:      # this OpenSSL cannot even offer them
                continue
            tried += 1
            proto, got = negotiated(out)
            check(proto is None, "TLS 1.2 with %s (SNI %s) accepted: %s\n%s" % (cipher, sni, got,
                                                                               out))
            wait_log(srv, r"TLS handshake failed client=\[127\.0\.0\.1\]: .*no shared cipher",
                     mark)
    check(tried >= 8, "only %d of the weak cipher sets could be offered by this OpenSSL" % tried)
    # Strong suites of the default list are accepted (the refusals are about the suites).
    for sni, cipher in ((HOST, "ECDHE-ECDSA-CHACHA20-POLY1305"),
                        (HOST, "ECDHE-ECDSA-AES256-GCM-SHA384"),
                        (OTHER, "ECDHE-RSA-AES128-GCM-SHA256"),
                        (OTHER, "DHE-RSA-AES256-GCM-SHA384")):
        rc, out = s_client(srv.ports["smtps"], "-tls1_2", "-servername", sni, "-cipher", cipher,
                           starttls=False)
        check(negotiated(out) == ("TLSv1.2", cipher), "%s (SNI %s) not negotiated: %r\n%s" % (
            cipher, sni, negotiated(out), out))


@g.test("curl-ssl-reqd-starttls")
def _(srv):
    need_pki()
    subj = unique("curl-tls")
    mark = len(srv.log_text())
    with tempfile.NamedTemporaryFile("wb", suffix=".eml") as f:
        f.write(message(subj, "curl over STARTTLS\r\n").encode())
        f.flush()
        rc, out = run(["curl", "-sS", "-v", "--max-time", "30", "--ssl-reqd", "--cacert", CA,
                       "smtp://127.0.0.1:%d/curl.test" % srv.port, "--mail-from", "a@example.org",
                       "--mail-rcpt", "demo@localhost", "-T", f.name])
        check(rc == 0, "curl --ssl-reqd exited %d\n%s" % (rc, out))
        check(re.search(r"> STARTTLS", out), "curl did not send STARTTLS:\n" + out)
        m = re.search(r"SSL connection using (TLSv1\.[23]) / (\S+)", out)
        check(m, "curl used no TLS:\n" + out)
        check(re.search(r"< 250 2\.0\.0 Ok: queued as", out), "not queued:\n" + out)
        msg = srv.wait_delivery("demo@localhost", subj)[0]
        check_tls_received(msg, m.group(1))
        check_tls_logged(srv, mark, m.group(1))
        # --ssl-reqd against the listener without STARTTLS: curl must refuse to go on.
        rc, out = run(["curl", "-sS", "-v", "--max-time", "30", "--ssl-reqd", "--cacert", CA,
                       "smtp://127.0.0.1:%d/curl.test" % srv.ports["plain"],
                       "--mail-from", "a@example.org", "--mail-rcpt", "demo@localhost",
                       "-T", f.name])
        check(rc != 0 and not re.search(r"< 250 2\.0\.0 Ok: queued", out),
              "curl --ssl-reqd delivered on a listener without STARTTLS (exit %d)\n%s" % (rc, out))


@g.test("curl-smtps")
def _(srv):
    need_pki()
    subj = unique("curl-smtps")
    with tempfile.NamedTemporaryFile("wb", suffix=".eml") as f:
        f.write(message(subj, "curl over implicit TLS\r\n").encode())
        f.flush()
        rc, out = run(["curl", "-sS", "-v", "--max-time", "30", "--cacert", CA,
                       "smtps://127.0.0.1:%d/curl.test" % srv.ports["smtps"],
                       "--mail-from", "a@example.org", "--mail-rcpt", "alice@localhost",
                       "-T", f.name])
    check(rc == 0, "curl smtps:// exited %d\n%s" % (rc, out))
    m = re.search(r"SSL connection using (TLSv1\.[23]) / (\S+)", out)
    check(m, "curl used no TLS:\n" + out)
    check(not re.search(r"> STARTTLS", out), "STARTTLS on an implicit-TLS port:\n" + out)
    msg = srv.wait_delivery("alice@localhost", subj)[0]
    check_tls_received(msg, m.group(1))


@g.test("sni-picks-certificate")
def _(srv):
    need_pki()
    cases = [(OTHER, OTHER, True), ("x.wild.test", OTHER, True), ("MAIL.OTHER.TEST", OTHER, True),
             (HOST, HOST, True), ("localhost", HOST, True), ("unknown.test", HOST, False),
             (None, HOST, False)]
    for label, starttls in (("main", True), ("smtps", False)):
        for sni, want, verifiable in cases:
            args = ["-CAfile", CA]
            if sni:
                args += ["-servername", sni]
                if verifiable:
                    args += ["-verify_return_error", "-verify_hostname", sni.lower()]
            else:
                args += ["-noservername"]
            rc, out = s_client(srv.ports[label], *args, starttls=starttls)
            check(negotiated(out)[0], "%s SNI %s: no TLS session (exit %d)\n%s" % (label, sni, rc,
                                                                                  out))
            got = subject_cn(out)
            check(got == want, "%s SNI %s: got the certificate for %s, want %s\n%s" % (
                label, sni, got, want, out))
            if verifiable:
                check("Verify return code: 0 (ok)" in out, "%s SNI %s: not verified\n%s" % (
                    label, sni, out))
    # The RSA certificate chosen by SNI also works for a whole session with Python's ssl.
    c = srv.connect(port="smtps", tls=ctx(), server_hostname=OTHER)
    cert = c.sock.getpeercert()
    cn = dict(x[0] for x in cert["subject"]).get("commonName")
    check(cn == OTHER, "Python ssl with SNI %s got %s" % (OTHER, cn))
    c.ehlo()
    c.quit()


@g.test("require-tls-submission")
def _(srv):
    need_pki()
    subj = unique("sub-tls")
    c = srv.connect(port="sub")
    r = c.ehlo("before.test")
    check(any(l[4:].upper() == "STARTTLS" for l in r.lines), "submission EHLO lacks STARTTLS: %r"
          % r.text)
    c.cmd("MAIL FROM:<a@example.org>", 530, "5.7.0")
    c.cmd("RCPT TO:<demo@localhost>", (503, 530))
    c.cmd("DATA", (503, 530))
    c.starttls(ctx(), HOST)
    c.cmd("MAIL FROM:<a@example.org>", 503, "5.5.1")     # EHLO again first (RFC 3207 4.2)
    c.ehlo("after.test")
    c.mail()
    c.rcpt("demo@localhost")
    qid = c.data(message(subj))
    c.quit()
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check_tls_received(msg)
    rcv = header_values(msg, "Received")[0]
    check("after.test" in rcv and "before.test" not in rcv and qid in rcv,
          "Received: %r should name the EHLO given after STARTTLS and the queue ID" % rcv)
    # The smtp listener (port 25's role) does not require TLS (RFC 3207 4: a public MX must
    # not), so the 530 above is the submission listener's doing.
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.cmd("RSET", 250, "2.0.0")
    c.quit()
    # smtps counts as TLS for the requirement.
    c = srv.connect(port="smtps", tls=ctx(), server_hostname=HOST)
    c.ehlo()
    c.mail()
    c.quit()


@g.test("starttls-injection-discarded")
def _(srv):
    need_pki()
    mark = len(srv.log_text())
    c = srv.connect()
    c.ehlo()
    injected = "RSET\r\nMAIL FROM:<evil@x>\r\n"
    c.send("STARTTLS\r\n" + injected)            # one send: one TCP segment on loopback
    c.expect(c.read(), 220, "2.0.0")
    c.wrap_tls(ctx(), HOST)
    # Had RSET and MAIL been executed (before or after the handshake), their replies would
    # come first: the replies must be exactly those of the commands sent over TLS.
    c.cmd("NOOP", 250, "2.0.0")
    c.cmd("MAIL FROM:<a@example.org>", 503, "5.5.1")     # no EHLO since TLS: state was reset
    r = c.ehlo()
    check(len(r.lines) > 3 and "PIPELINING" in r.text, "third reply is not EHLO's: %r" % r.text)
    c.cmd("RCPT TO:<demo@localhost>", 503, "5.5.1")      # and no MAIL from the injection
    c.quit()
    lines = wait_log(srv, r"discarded %d octets sent after STARTTLS" % len(injected), mark)
    check("127.0.0.1" in lines[0], "the discard line does not name the client: %r" % lines[0])
    leaked = [l for l in log_lines(srv, r"evil@x", mark) if "discarded" not in l]
    check(not leaked, "the injected MAIL FROM:<evil@x> reached the session:\n" +
          "\n".join("    " + l for l in leaked))
    check_tls_logged(srv, mark)


class BioTls:
    """A TLS client on memory BIOs over a plain socket, so the test decides what goes into
    each TCP send: e.g. the client's Finished and its first command in one segment. closed
    is set when the connection has ended."""

    def __init__(self, sock, server_hostname=HOST):
        self.sock = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx().wrap_bio(self.inc, self.out, server_hostname=server_hostname)
        self.plain = b""
        self.closed = None

    def handshake(self, then=b"", settle=False):
        """Run the handshake; the last flight (the client's Finished) goes out in one send
        together with the TLS records of `then`. settle: then wait for the server's first
        records after it (TLS 1.3 session tickets, or the smtps greeting), so that what the
        test sends next cannot share a segment with the Finished."""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                data = self.out.read()
                if data:
                    self.sock.sendall(data)
                r = self.sock.recv(65536)
                check(r, "the server closed the connection during the handshake")
                self.inc.write(r)
        if then:
            self.obj.write(then)
        self.sock.sendall(self.out.read())
        if settle:
            self.sock.settimeout(5)
            try:
                r = self.sock.recv(65536)
            except socket.timeout:
                r = b""
            check(r, "nothing from the server after the handshake")
            self.inc.write(r)

    def send(self, data):
        self.obj.write(data)
        self.sock.sendall(self.out.read())

    def drain(self):
        """Decrypt what has arrived into self.plain; notes a close."""
        while self.closed is None:
            try:
                d = self.obj.read(65536)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLZeroReturnError:
                self.closed = "clean"
                return
            except ssl.SSLEOFError:
                self.closed = "ragged"
                return
            if not d:                       # SSLObject.read() after close_notify
                self.closed = "clean"
                return
            self.plain += d

    def receive(self, timeout):
        """Wait for more records (or the end of the connection); False on timeout."""
        self.sock.settimeout(max(timeout, 0.01))
        try:
            r = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            r = b""
        if r:
            self.inc.write(r)
        else:
            self.inc.write_eof()
            self.drain()
            if self.closed is None:
                self.closed = "ragged"
        return True

    def reply(self, timeout=10):
        """One SMTP reply (all its lines) as text."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            m = re.search(rb"(?:^|\n)\d{3} [^\n]*\n", self.plain)
            if m:
                r, self.plain = self.plain[:m.end()], self.plain[m.end():]
                return r.decode("utf-8", "replace")
            check(self.closed is None, "connection closed (%s) while waiting for a reply "
                  "(have %r)" % (self.closed, self.plain[:200]))
            left = deadline - time.monotonic()
            check(left > 0, "no reply within %ss (have %r)" % (timeout, self.plain[:200]))
            self.receive(left)


def bio_session(srv, label):
    """A TCP connection to listener label, brought to the point where the TLS handshake
    starts (after EHLO and STARTTLS on the smtp listener); returns (socket, BioTls)."""
    sock = socket.create_connection(("127.0.0.1", srv.ports[label]), timeout=10)
    if label != "smtps":
        c = Smtp.__new__(Smtp)            # ternlib's reader for the plaintext part
        c.sock, c.transcript = sock, []
        c.f = sock.makefile("rb")
        c.expect(c.read(), 220)
        c.ehlo()
        c.cmd("STARTTLS", 220, "2.0.0")
        c.f.close()
    return sock, BioTls(sock)


def each_listener(labels, fn):
    """Run fn(label) for every label; fail with all the labels' reasons, not just the first."""
    errors = []
    for label in labels:
        try:
            fn(label)
        except (TestFailure, OSError, ssl.SSLError) as e:
            errors.append("%s: %s" % (label, e))
    check(not errors, "\n".join(errors))


@g.test("tls13-command-with-finished")
def _(srv):
    # TLS 1.3 lets the client send data right behind its Finished (RFC 8446 4.4.4); busy
    # clients' first EHLO often shares a TCP segment with it. The command must be answered,
    # not discarded as if it were plaintext sent after STARTTLS.
    need_pki()

    def one(label):
        mark = len(srv.log_text())
        sock, t = bio_session(srv, label)
        try:
            t.handshake(then=b"EHLO together.test\r\n")
            check(t.obj.version() == "TLSv1.3", "negotiated %s" % t.obj.version())
            if label == "smtps":
                r = t.reply()
                check(r.startswith("220 "), "first reply is not the greeting: %r" % r)
            r = t.reply()
            check(r.startswith("250-") and "together.test" in r and "PIPELINING" in r,
                  "EHLO sent with the Finished got %r" % r)
            t.send(b"MAIL FROM:<a@example.org>\r\n")
            r = t.reply()
            check(r.startswith("250 2.1.0"), "MAIL after that EHLO got %r" % r)
            t.send(b"QUIT\r\n")
            r = t.reply()
            check(r.startswith("221 2.0.0"), "QUIT got %r" % r)
        finally:
            sock.close()
        check(not log_lines(srv, r"discarded \d+ octets", mark),
              "data sent over TLS was discarded:\n%s" % srv.log_tail(mark))
        check_tls_logged(srv, mark, "TLSv1.3")
    each_listener(("main", "smtps"), one)


@g.test("close-notify-after-quit")
def _(srv):
    # RFC 8446 6.1 (and RFC 5246 7.2.1): each party sends close_notify before closing its
    # write side. OpenSSL 3 clients report a bare TCP close as "unexpected eof while reading"
    # (s_client exits 1), which mail clients log as an error after a perfectly good QUIT.
    # (s_client is the judge: Debian's Python 3.11 ssl cannot tell the two apart.)
    need_pki()
    errors = []
    for label, starttls in (("main", True), ("smtps", False)):
        for flag in ("-tls1_2", "-tls1_3"):
            rc, out = s_client(srv.ports[label], flag, "-CAfile", CA, starttls=starttls)
            if not re.search(r"^221 2\.0\.0", out, re.M):
                errors.append("%s %s: no 221 to QUIT\n%s" % (label, flag, out))
            elif rc != 0 or "unexpected eof" in out:
                errors.append("%s %s: the server closed after 221 without a close_notify alert "
                              "(s_client exit %d: %s)" % (label, flag, rc, "; ".join(
                                  l for l in out.splitlines() if ":error:" in l)[:200]))
    check(not errors, "\n".join(errors))


@g.test("starttls-plaintext-after-220")
def _(srv):
    # Plaintext sent after the 220 (a separate packet) meets the TLS layer: it is not a
    # handshake, so the connection fails; it is never executed as a command.
    need_pki()
    mark = len(srv.log_text())
    c = srv.connect()
    c.ehlo()
    c.cmd("STARTTLS", 220, "2.0.0")
    c.send("RSET\r\nMAIL FROM:<evil2@x>\r\n")
    data = read_to_eof(c.sock, 10)
    c.close()
    check(data is not None, "connection still open 10s after plaintext in place of a handshake")
    check(not data or data[0] == 0x15, "the server answered the plaintext with %r" % data[:60])
    wait_log(srv, r"TLS handshake failed client=\[127\.0\.0\.1\]", mark)
    leaked = [l for l in log_lines(srv, r"evil2@x", mark) if "discarded" not in l]
    check(not leaked, "the plaintext MAIL reached the session:\n" + "\n".join(leaked))
    c = srv.connect()
    c.ehlo()
    c.quit()


@g.test("starttls-state-reset")
def _(srv):
    need_pki()
    subj = unique("reset")
    c = srv.connect()
    r = c.ehlo("before.test")
    check(any(l[4:].upper() == "STARTTLS" for l in r.lines), "EHLO lacks STARTTLS: %r" % r.text)
    c.cmd("STARTTLS now", 501, "5.5.4")                  # no argument (RFC 3207 4)
    c.mail("before@example.org")
    c.cmd("STARTTLS", 503, "5.5.1")                      # not inside a transaction
    c.cmd("RSET", 250, "2.0.0")
    c.starttls(ctx(), HOST)
    c.cmd("MAIL FROM:<a@example.org>", 503, "5.5.1")     # the EHLO from before is forgotten
    r = c.ehlo("after.test")
    check(not any("STARTTLS" in l.upper() for l in r.lines),
          "EHLO after TLS still offers STARTTLS: %r" % r.text)
    for ext in ("PIPELINING", "8BITMIME", "SIZE", "CHUNKING"):
        check(any(l[4:].upper().startswith(ext) for l in r.lines), "EHLO after TLS lacks %s: %r"
              % (ext, r.text))
    c.cmd("STARTTLS", 503, "5.5.1")                      # TLS is already active
    c.mail()
    c.rcpt("demo@localhost")
    c.data(message(subj))
    c.quit()
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check_tls_received(msg)
    rcv = header_values(msg, "Received")[0]
    check(rcv.startswith("from after.test "), "Received: %r should say 'from after.test'" % rcv)
    check(header_values(msg, "Return-Path") == ["<a@example.org>"], "Return-Path %r" %
          header_values(msg, "Return-Path"))
    # EHLO and STARTTLS pipelined in one packet (RFC 2920: STARTTLS ends the group).
    c = srv.connect()
    c.send("EHLO pipe.test\r\nSTARTTLS\r\n")
    c.expect(c.read(), 250)
    c.expect(c.read(), 220, "2.0.0")
    c.wrap_tls(ctx(), HOST)
    c.ehlo()
    c.quit()
    # HELO clients may use STARTTLS too; HELO after TLS is accepted.
    c = srv.connect()
    c.helo()
    c.starttls(ctx(), HOST)
    c.helo("helo-after.test")
    c.mail()
    c.quit()


@g.test("starttls-not-offered")
def _(srv):
    need_pki()
    c = srv.connect(port="plain")
    r = c.ehlo()
    check(not any("STARTTLS" in l.upper() for l in r.lines),
          "EHLO offers STARTTLS on a no-starttls listener: %r" % r.text)
    c.cmd("STARTTLS", 502, "5.5.1")
    c.mail()                                  # the session goes on in clear
    c.rcpt("demo@localhost")
    c.quit()
    # Implicit TLS does not offer STARTTLS either.
    c = srv.connect(port="smtps", tls=ctx(), server_hostname=HOST)
    r = c.ehlo()
    check(not any("STARTTLS" in l.upper() for l in r.lines), "EHLO on smtps offers STARTTLS")
    c.cmd("STARTTLS", 503, "5.5.1")
    c.quit()


def read_to_eof(sock, timeout):
    """Everything the server sends until it closes (None if it does not within timeout): at
    most a TLS alert record is expected from a server refusing a handshake."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline and len(data) < 65536:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            return None
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def client_hello(server_hostname=HOST):
    """The bytes of a real TLS ClientHello (Python's ssl on memory BIOs)."""
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx().wrap_bio(inc, outg, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = outg.read()
    check(len(data) > 100 and data[0] == 0x16, "no ClientHello from Python's ssl: %r" % data[:20])
    return data


@g.test("handshake-failures-logged")
def _(srv):
    need_pki()
    mark = len(srv.log_text())
    failed = r"TLS handshake failed client=\[127\.0\.0\.1\]"
    n = 0
    hello = client_hello()

    # 1. smtps: plaintext SMTP instead of a ClientHello.
    s = socket.create_connection(("127.0.0.1", srv.ports["smtps"]), timeout=10)
    s.sendall(b"EHLO garbage.test\r\n")
    data = read_to_eof(s, 10)
    s.close()
    check(data is not None, "smtps connection still open 10s after plaintext")
    check(not data or data[0] == 0x15, "smtps answered plaintext with %r" % data[:80])
    n += 1
    wait_log(srv, failed, mark, n)

    # 2. smtps: half a ClientHello, then close.
    s = socket.create_connection(("127.0.0.1", srv.ports["smtps"]), timeout=10)
    s.sendall(hello[:len(hello) // 2])
    time.sleep(0.2)
    s.close()
    n += 1
    wait_log(srv, failed, mark, n)

    # 3. smtps: connect and close at once.
    socket.create_connection(("127.0.0.1", srv.ports["smtps"]), timeout=10).close()
    n += 1
    wait_log(srv, failed, mark, n)

    # 4. STARTTLS, then close without a handshake.
    c = srv.connect()
    c.ehlo()
    c.cmd("STARTTLS", 220, "2.0.0")
    c.close()
    n += 1
    wait_log(srv, failed, mark, n)

    # 5. STARTTLS, half a ClientHello, then close.
    c = srv.connect()
    c.ehlo()
    c.cmd("STARTTLS", 220, "2.0.0")
    c.send(hello[:40])
    time.sleep(0.2)
    c.close()
    n += 1
    wait_log(srv, failed, mark, n)

    # 6. A client that does not trust the certificate aborts the handshake (alert).
    for port, starttls in ((srv.port, True), (srv.ports["smtps"], False)):
        try:
            if starttls:
                c = srv.connect()
                c.ehlo()
                c.starttls(ctx(os.path.join(ROGUE, "ca.crt")), HOST)
            else:
                srv.connect(port=port, tls=ctx(os.path.join(ROGUE, "ca.crt")), server_hostname=HOST)
            raise TestFailure("a client trusting another CA completed the handshake")
        except ssl.SSLCertVerificationError:
            pass
        n += 1
        lines = wait_log(srv, failed, mark, n)
        check(re.search(r"alert|certificate", lines[-1]), "the failure log line does not say "
              "why: %r" % lines[-1])

    check(len(log_lines(srv, r"tls client=", mark)) == 0,
          "a failed handshake was logged as a TLS session:\n" + srv.log_tail(mark))
    no_crash(srv, mark)
    # The server keeps serving, both kinds of listener.
    for port in ("main", "smtps"):
        subj = unique("after-fail-" + port)
        if port == "smtps":
            c = srv.connect(port=port, tls=ctx(), server_hostname=HOST)
        else:
            c = srv.connect()
            c.ehlo()
            c.starttls(ctx(), HOST)
        c.ehlo()
        c.mail()
        c.rcpt("demo@localhost")
        c.data(message(subj))
        c.quit()
        check_tls_received(srv.wait_delivery("demo@localhost", subj)[0])


@g.test("smtp-bdat-starttls")
def _(srv):
    need_pki()
    subj = unique("bdat-tls")
    with tempfile.NamedTemporaryFile("wb", suffix=".eml") as f:
        body = "".join("bdat over tls line %05d %s\r\n" % (i, "y" * 50) for i in range(400))
        f.write(message(subj, body).encode())
        f.flush()
        rc, out = run(["/usr/bin/python3", os.path.join(TESTKIT, "smtp-bdat"), "--starttls",
                       "--cafile", CA, "--servername", HOST, "--chunk", "3000", "--pipeline",
                       "127.0.0.1", str(srv.port), "a@example.org", "demo@localhost", f.name])
    check(rc == 0, "smtp-bdat --starttls exited %d\n%s" % (rc, out))
    qid_of(out)
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check_tls_received(msg)
    check(norm(body.encode()) in norm(msg), "body changed over BDAT/TLS")


@g.test("smtplib-large-message")
def _(srv):
    # ~900 KB across many TLS records, both kinds of listener: DATA parsing over TLS.
    need_pki()
    body = "".join("line %06d of a large message over TLS %s\r\n" % (i, "z" * 40)
                   for i in range(9500))
    for label in ("main", "smtps"):
        subj = unique("big-" + label)
        data = message(subj, body).encode()
        if label == "smtps":
            # smtplib verifies the host it connected to: the certificate has IP:127.0.0.1
            s = smtplib.SMTP_SSL("127.0.0.1", srv.ports["smtps"], timeout=60, context=ctx(),
                                 local_hostname="big.test")
        else:
            s = smtplib.SMTP("127.0.0.1", srv.port, timeout=60, local_hostname="big.test")
            s.ehlo()
            check(s.has_extn("starttls"), "no STARTTLS in EHLO")
            code, _ = s.starttls(context=ctx())
            check(code == 220, "STARTTLS %d" % code)
        with s:
            refused = s.sendmail("a@example.org", ["alice@localhost"], data)
            check(refused == {}, "refused %r" % refused)
        msg = srv.wait_delivery("alice@localhost", subj, timeout=40)[0]
        check(norm(body.encode()) in norm(msg), "%s: the large body changed" % label)
        check_tls_received(msg)
    no_crash(srv)


# ---- handshake timeouts: a client that stalls during the handshake is dropped -------------

stall = Group("tls-stall", tls_certificate=[cert_line(A)], timeout_command=2,
              listeners={"smtps": "smtps"})


@stall.test("handshake-stall-times-out")
def _(srv):
    # The handshake runs under the command timeout: a client that connects and never
    # finishes it cannot hold a connection slot (slowloris).
    need_pki()
    mark = len(srv.log_text())
    hello = client_hello()
    socks = []
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", srv.ports["smtps"]), timeout=20)
    socks.append(s)                                      # smtps: nothing at all
    s = socket.create_connection(("127.0.0.1", srv.ports["smtps"]), timeout=20)
    s.sendall(hello[:30])
    socks.append(s)                                      # smtps: a third of a ClientHello
    c = srv.connect(timeout=20)
    c.ehlo()
    c.cmd("STARTTLS", 220, "2.0.0")
    socks.append(c.sock)                                 # STARTTLS, then nothing
    try:
        for i, s in enumerate(socks):
            s.settimeout(max(1, 15 - (time.monotonic() - t0)))
            try:
                data = s.recv(4096)
            except socket.timeout:
                raise TestFailure("stalled handshake %d still open after %.0fs (timeout_command "
                                  "is 2s)" % (i + 1, time.monotonic() - t0))
            except ConnectionResetError:
                data = b""
            check(not data or data[0] == 0x15, "stalled handshake %d: the server sent %r" % (
                i + 1, data[:40]))
    finally:
        for s in socks:
            s.close()
        c.close()
    lines = wait_log(srv, r"TLS handshake failed client=\[127\.0\.0\.1\]", mark, 3)
    check(all("timeout" in l for l in lines), "the stalled handshakes are not logged as "
          "timeouts:\n" + "\n".join("    " + l for l in lines))
    no_crash(srv, mark)
    c = srv.connect(port="smtps", tls=ctx(), server_hostname=HOST)
    c.ehlo()
    c.quit()


# ---- SIGHUP: a new certificate for new connections, old sessions go on ---------------------

reload_group = Group("tls-reload", server=False)


def fingerprint(port, starttls, sni=HOST):
    """SHA-256 of the certificate tern presents on a new connection (verified)."""
    if starttls:
        c = Smtp(port, timeout=15)
        c.ehlo()
        c.starttls(ctx(), sni)
    else:
        c = Smtp(port, timeout=15, tls=ctx(), server_hostname=sni)
    try:
        return hashlib.sha256(c.sock.getpeercert(binary_form=True)).hexdigest()
    finally:
        c.close()


def file_fingerprint(path):
    r = subprocess.run(["openssl", "x509", "-in", path, "-outform", "DER"], capture_output=True,
                       timeout=20)
    check(r.returncode == 0, "cannot read %s" % path)
    return hashlib.sha256(r.stdout).hexdigest()


def install_cert(src, live):
    """Copy src's chain and key to live/ atomically (rename), as an operator's deploy would."""
    for f in ("server-chain.crt", "server.key"):
        tmp = os.path.join(live, f + ".new")
        shutil.copy2(os.path.join(src, f), tmp)
        os.rename(tmp, os.path.join(live, f))


@reload_group.test("sighup-reload-certificate")
def _(make):
    need_pki()
    first = mkcerts(os.path.join(PKI, "reload-1"), HOST, "127.0.0.1", ca_from=A)
    second = mkcerts(os.path.join(PKI, "reload-2"), HOST, "127.0.0.1", ca_from=A)
    live = os.path.join(PKI, "live")
    os.makedirs(live, exist_ok=True)
    install_cert(first, live)
    fp1 = file_fingerprint(os.path.join(first, "server.crt"))
    fp2 = file_fingerprint(os.path.join(second, "server.crt"))
    check(fp1 != fp2, "mkcerts made the same certificate twice")
    srv = make("main", tls_certificate=cert_line(live), listeners={"smtps": "smtps"})
    srv.start()
    for label in ("main", "smtps"):
        got = fingerprint(srv.ports[label], label == "main")
        check(got == fp1, "%s: not the configured certificate before the reload" % label)
    # Sessions opened before the reload, in the middle of a transaction.
    subj = unique("before-reload")
    old = srv.connect()
    old.ehlo()
    old.starttls(ctx(), HOST)
    old.ehlo()
    old.mail()
    old.rcpt("demo@localhost")
    old_s = srv.connect(port="smtps", tls=ctx(), server_hostname=HOST)
    old_s.ehlo()
    old_s.mail()
    mark = len(srv.log_text())
    install_cert(second, live)
    srv.send_signal(signal.SIGHUP)
    wait_log(srv, r"reloaded configuration", mark)
    for label in ("main", "smtps"):
        got = poll(lambda: fingerprint(srv.ports[label], label == "main") == fp2, 10, 0.2)
        check(got, "%s: new connections do not get the new certificate after SIGHUP" % label)
    # The old sessions finish their transactions on the old certificate.
    check(hashlib.sha256(old.sock.getpeercert(binary_form=True)).hexdigest() == fp1,
          "the old session's certificate changed")
    old.cmd("NOOP", 250, "2.0.0")
    qid = old.data(message(subj))
    old.quit()
    old_s.rcpt("alice@localhost")
    old_s.data(message(subj))
    old_s.quit()
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    check(qid in header_values(msg, "Received")[0], "queue ID not in Received:")
    check_tls_received(msg)
    check_tls_received(srv.wait_delivery("alice@localhost", subj)[0])
    wait_log(srv, r"generation 1 has finished", mark, timeout=15)
    no_crash(srv)
    # A reload with a broken certificate keeps the running one.
    mark = len(srv.log_text())
    with open(os.path.join(live, "server-chain.crt"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    srv.send_signal(signal.SIGHUP)
    lines = wait_log(srv, r"reload failed", mark)
    check(os.path.join(live, "server-chain.crt") in lines[0],
          "the reload error does not name the certificate file: %r" % lines[0])
    check(srv.running(), "tern exited on a broken certificate at reload")
    for label in ("main", "smtps"):
        check(fingerprint(srv.ports[label], label == "main") == fp2,
              "%s: the running certificate was not kept after a failed reload" % label)
    srv.stop_checked()


# ---- configurations tern must refuse at startup ---------------------------------------------

config_group = Group("tls-config", server=False)


def serve_fails(srv, *needles):
    """`tern serve` on srv's configuration must exit non-zero, with a message containing
    every needle, without starting to listen."""
    p = subprocess.Popen([srv.binary, "serve", "-c", srv.conf], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=srv.dir)
    try:
        out, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        raise TestFailure("tern serve kept running on a bad configuration:\n%s\n%s" % (
            srv.render_config(), out.decode("utf-8", "replace")))
    text = out.decode("utf-8", "replace")
    check(p.returncode != 0, "tern serve exited 0 on a bad configuration:\n%s" % text)
    for n in needles:
        check(n in text, "the error does not mention %r:\n%s" % (n, text))
    check(not SANITIZER_RE.search(text), "sanitizer report:\n" + text)
    return text


@config_group.test("missing-certificate-file")
def _(make):
    need_pki()
    missing = os.path.join(PKI, "no-such-dir", "missing.crt")
    serve_fails(make("nocert", tls_certificate="%s %s" % (missing, os.path.join(A, "server.key"))),
                missing)
    missing = os.path.join(PKI, "missing.key")
    serve_fails(make("nokey", tls_certificate="%s %s" % (os.path.join(A, "server.crt"), missing)),
                missing)
    # the second certificate of two is checked too
    missing = os.path.join(PKI, "second-missing.crt")
    serve_fails(make("nocert2", tls_certificate=[cert_line(A), "%s %s" % (
        missing, os.path.join(B, "server.key"))]), missing)


@config_group.test("bad-certificate-or-key")
def _(make):
    need_pki()
    notpem = os.path.join(PKI, "not-a-cert.crt")
    with open(notpem, "w") as f:
        f.write("this is not a certificate\n")
    serve_fails(make("notpem", tls_certificate="%s %s" % (notpem, os.path.join(A, "server.key"))),
                notpem)
    # A's certificate with B's key
    serve_fails(make("mismatch", tls_certificate="%s %s" % (os.path.join(A, "server.crt"),
                                                          os.path.join(B, "server.key"))),
                os.path.join(B, "server.key"), "does not match")


@config_group.test("tls-listener-options-need-certificate")
def _(make):
    serve_fails(make("smtps-nocert", listeners={"smtps": "smtps"}), "smtps", "tls_certificate")
    serve_fails(make("starttls-nocert", listen_opts="starttls"), "starttls", "tls_certificate")
    serve_fails(make("reqtls-nocert", listen_opts="require-tls"), "require-tls", "tls_certificate")
    need_pki()
    serve_fails(make("reqtls-nostarttls", listen_opts="no-starttls require-tls",
                     tls_certificate=cert_line(A)), "require-tls")
    serve_fails(make("bad-ciphers", tls_ciphers="NO-SUCH-CIPHER", tls_certificate=cert_line(A)),
                "tls_ciphers")
    serve_fails(make("bad-option", listen_opts="tls-please", tls_certificate=cert_line(A)),
                "tls-please")


@config_group.test("no-certificate-no-starttls")
def _(make):
    srv = make("plain")
    srv.start()
    c = srv.connect()
    r = c.ehlo()
    check(not any("STARTTLS" in l.upper() for l in r.lines),
          "EHLO offers STARTTLS without a certificate: %r" % r.text)
    c.cmd("STARTTLS", 502, "5.5.1")
    c.mail()
    c.quit()
    srv.stop_checked()


@config_group.test("tls-ciphers-option")
def _(make):
    need_pki()
    srv = make("ciphers", tls_certificate=cert_line(A), listeners={"smtps": "smtps"},
               tls_ciphers="ECDHE-ECDSA-CHACHA20-POLY1305")
    srv.start()
    rc, out = s_client(srv.ports["smtps"], "-tls1_2", starttls=False)
    check(negotiated(out) == ("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305"),
          "tls_ciphers not applied: %r\n%s" % (negotiated(out), out))
    rc, out = s_client(srv.ports["smtps"], "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
                       starttls=False)
    check(negotiated(out)[0] is None, "a suite outside tls_ciphers was accepted: %r" % (
        negotiated(out),))
    rc, out = s_client(srv.port, "-tls1_3")
    check(negotiated(out)[0] == "TLSv1.3", "TLS 1.3 broken by tls_ciphers: %r" % (negotiated(out),))
    srv.stop_checked()


if __name__ == "__main__":
    run_main()
