#!/usr/bin/python3
"""test_dovecot_auth.py - SMTP AUTH checked by a real, running Dovecot (auth_backend dovecot).

Starts a private Dovecot (dovecot-auth.conf.in: no protocols, a passwd-file passdb with
plaintext passwords, its auth-client socket in the test directory owned by tern's user) and
points tern at the socket. Then: EHLO lists the mechanisms Dovecot announces that may be used
now (no PLAIN/LOGIN without TLS, 538 if tried); swaks AUTH PLAIN and LOGIN over STARTTLS,
CRAM-MD5 without TLS, `tern send` SCRAM-SHA-256 (it verifies Dovecot's signature relayed
through tern) and smtplib's login() all succeed for Dovecot's user; a wrong password or an
unknown user is 535 5.7.8; the name Dovecot returns (user=, lower-cased by
auth_username_format) is the one sender_login_match and the log use; relaying needs AUTH;
cancel and bad base64 inside a relayed exchange; the lockout after auth_max_failures;
Dovecot stopped -> 454 4.7.0 and back again -> AUTH works; a socket that never answers ->
454 4.7.0 after dovecot_auth_timeout.

    /usr/bin/python3 tests/integration/test_dovecot_auth.py BUILD_DIR [name-filter...]
"""
import atexit
import base64
import grp
import hmac
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading

from ternlib import (Group, TestFailure, build_dir, check, default_user, header_values, mkcerts,
                     poll, run_main, tls_client_context, unique)
from ternlib import run_tool as run  # noqa: E402

HOST = "mx.tern.test"
USER = "alice@localhost"
PW = "dovecot pw for alice"

WORK = tempfile.mkdtemp(prefix="tern-it-dovecot-auth.", dir=os.environ.get("TERN_IT_TMP") or None)
os.chmod(WORK, 0o755)   # tern's unprivileged workers must reach the socket inside
SOCKET = os.path.join(WORK, "auth-client")
PKI = os.path.join(WORK, "pki")
CA = os.path.join(PKI, "ca.crt")
CERT = "%s %s" % (os.path.join(PKI, "server-chain.crt"), os.path.join(PKI, "server.key"))


class Dovecot:
    """A Dovecot that only authenticates, through SOCKET."""

    def __init__(self):
        self.dir = os.path.join(WORK, "dovecot")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.log = os.path.join(self.dir, "dovecot.log")
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("%s:{PLAIN}%s\n" % (USER, PW))
            f.write("demo@localhost:{PLAIN}demo pw\n")
        root = os.geteuid() == 0
        helper = pwd.getpwnam("nobody") if root else pwd.getpwuid(os.geteuid())
        sock_user = default_user() if root else helper.pw_name
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "dovecot-auth.conf.in")) as f:
            conf = f.read()
        for k, v in (("DIR", self.dir), ("ID", str(os.getpid())), ("SOCKET", SOCKET),
                     ("SOCKET_USER", sock_user), ("HELPER", helper.pw_name),
                     ("HELPER_GROUP", grp.getgrgid(helper.pw_gid).gr_name)):
            conf = conf.replace("@%s@" % k, v)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = None

    def start(self):
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        check(os.access(binary, os.X_OK), "dovecot is not installed (apt-get install dovecot-core)")
        # its own process group: stop() waits until the auth process, too, is gone
        self.proc = subprocess.Popen([binary, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if not poll(lambda: self.answers() or self.proc.poll() is not None, 20) or \
                self.proc.poll() is not None:
            raise TestFailure("dovecot's auth socket %s does not answer\n%s" % (SOCKET,
                                                                               self.log_text()))

    def answers(self):
        """Does the auth socket complete a handshake?"""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(SOCKET)
                s.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
                data = b""
                while b"\nDONE\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
                return True
        except OSError:
            return False

    def stop(self):
        if not self.proc:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

        def group_gone():
            try:
                os.killpg(pgid, 0)
                return False
            except ProcessLookupError:
                return True
        # Without its master, Dovecot's auth process keeps serving open connections for
        # another 30 s: stop it too, so "Dovecot is down" is true at once.
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if not poll(group_gone, 10, 0.1):
            os.killpg(pgid, signal.SIGKILL)
            poll(group_gone, 10, 0.1)

    def log_text(self):
        try:
            with open(self.log) as f:
                return "    dovecot log:\n" + "".join("    | " + l for l in f.readlines()[-30:])
        except OSError:
            return "    (no dovecot log)"


_setup_error = None
DOVECOT = None
try:
    mkcerts(PKI, HOST, "localhost", "127.0.0.1")
    DOVECOT = Dovecot()
    DOVECOT.start()
except Exception as e:  # noqa: BLE001 - reported by every test
    _setup_error = "setup failed: %s" % e


@atexit.register
def _cleanup():
    if DOVECOT:
        DOVECOT.stop()
    shutil.rmtree(WORK, ignore_errors=True)


def need_setup():
    check(_setup_error is None, _setup_error or "")


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def auth_line(r):
    return [l[4:] for l in r.lines if l[4:].upper().startswith("AUTH ")]


def ehlo_with_dovecot(srv, port=None, want="SCRAM-SHA-256"):
    """Connect and EHLO until the AUTH line shows Dovecot's mechanisms: each worker learns them
    from its own handshake, which may still be under way right after tern started."""
    got = {}

    def attempt():
        c = srv.connect(port=port)
        r = c.ehlo()
        if any(want in l.split() for l in auth_line(r)):
            got["c"], got["r"] = c, r
            return True
        c.quit()
        return False
    check(poll(attempt, 20, 0.2), "EHLO never listed %s from Dovecot\n%s" % (want, srv.log_tail()))
    return got["c"], got["r"]


def swaks(srv, port, mech, user, pw, tls, subj=None, rcpt="demo@localhost", sender=USER):
    cmd = ["swaks", "--server", "127.0.0.1:%d" % port, "--auth", mech, "--auth-user", user,
           "--auth-password", pw, "--to", rcpt, "--from", sender, "--helo", "dovecot.test",
           "--timeout", "20"]
    if tls:
        cmd.append("--tls")
    if subj:
        cmd += ["--header", "Subject: " + subj]
    return run(cmd)


g = Group("dovecot-auth", mailboxes=["demo", "alice"], tls_certificate=CERT,
          listeners={"sub": "submission"}, auth_backend="dovecot", dovecot_auth_socket=SOCKET,
          auth_max_failures=0, sender_login_match=True)


@g.test("ehlo-lists-dovecot-mechanisms")
def _(srv):
    need_setup()
    c, r = ehlo_with_dovecot(srv)
    # without TLS only the mechanisms that keep the password off the wire
    check(auth_line(r) == ["AUTH CRAM-MD5 SCRAM-SHA-256"], "EHLO without TLS: %r" % r.lines)
    c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PW)), 538, "5.7.11")
    c.cmd("AUTH LOGIN", 538, "5.7.11")
    c.cmd("AUTH GSSAPI", 504, "5.5.4")      # not announced by this Dovecot
    c.quit()
    c = srv.connect(port=srv.ports["sub"])
    c.ehlo()
    c.starttls(tls_client_context(CA), HOST)
    r = c.ehlo()
    check(auth_line(r) == ["AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"],
          "EHLO after STARTTLS: %r" % r.lines)
    c.quit()


@g.test("swaks-plain-and-login-starttls")
def _(srv):
    need_setup()
    ehlo_with_dovecot(srv)[0].quit()
    for mech in ("PLAIN", "LOGIN"):
        subj = unique("dovecot-" + mech.lower())
        rc, out = swaks(srv, srv.ports["sub"], mech, USER, PW, True, subj)
        check(rc == 0, "swaks --auth %s exited %d\n%s" % (mech, rc, out))
        check(re.search(r"<~  235 2\.7\.0", out), "no 235 for %s:\n%s" % (mech, out))
        msg = srv.wait_delivery("demo@localhost", subj)[0]
        rcv = header_values(msg, "Received")[0]
        check("ESMTPSA" in rcv, "Received: %r should say ESMTPSA" % rcv)
        check(re.search(r"auth client=\[127\.0\.0\.1\] mech=%s user=%s result=ok" % (mech, USER),
                        srv.log_text()), "no auth ok log line for %s" % mech)


@g.test("swaks-cram-md5-without-tls")
def _(srv):
    need_setup()
    ehlo_with_dovecot(srv)[0].quit()
    subj = unique("dovecot-cram")
    rc, out = swaks(srv, srv.port, "CRAM-MD5", USER, PW, False, subj)
    check(rc == 0, "swaks --auth CRAM-MD5 exited %d\n%s" % (rc, out))
    check(re.search(r"<[-~]  235 2\.7\.0", out), "no 235:\n" + out)
    msg = srv.wait_delivery("demo@localhost", subj)[0]
    rcv = header_values(msg, "Received")[0]
    check("ESMTPA" in rcv and "ESMTPSA" not in rcv, "Received: %r should say ESMTPA" % rcv)


@g.test("tern-send-scram-sha-256")
def _(srv):
    need_setup()
    ehlo_with_dovecot(srv)[0].quit()
    subj = unique("dovecot-scram")
    base = [os.path.join(build_dir(), "tern"), "send", "--server", "127.0.0.1",
            "--port", str(srv.port), "--from", USER, "--to", "demo@localhost",
            "--auth", "SCRAM-SHA-256", "--user", USER, "--no-color", "--timeout", "20"]
    rc, out = run(base + ["--password", PW, "--header", "Subject: " + subj])
    check(rc == 0, "tern send exited %d\n%s" % (rc, out))
    # Dovecot's server signature, relayed through tern, proves it knew the password too
    check("the server's signature is right" in out, "server signature not verified:\n" + out)
    srv.wait_delivery("demo@localhost", subj)
    rc, out = run(base + ["--password", "wrong"])
    check(rc != 0 and "535" in out, "SCRAM with a wrong password: exit %d\n%s" % (rc, out))


@g.test("smtplib-login-starttls")
def _(srv):
    need_setup()
    ehlo_with_dovecot(srv)[0].quit()
    with smtplib.SMTP("127.0.0.1", srv.ports["sub"], timeout=20) as s:
        s.starttls(context=tls_client_context(CA))   # the certificate names 127.0.0.1 too
        code, _ = s.login(USER, PW)
        check(code == 235, "smtplib login: %d" % code)
        subj = unique("dovecot-smtplib")
        s.sendmail(USER, ["demo@localhost"], "From: <%s>\r\nSubject: %s\r\n\r\nhi\r\n" % (USER, subj))
    srv.wait_delivery("demo@localhost", subj)


@g.test("wrong-password-and-unknown-user-535")
def _(srv):
    need_setup()
    ehlo_with_dovecot(srv)[0].quit()
    for user, pw in ((USER, "wrong"), ("nobody@localhost", PW)):
        rc, out = swaks(srv, srv.ports["sub"], "PLAIN", user, pw, True)
        check(rc != 0 and re.search(r"<~\*\s+535 5\.7\.8", out),
              "expected 535 5.7.8 for %s:\n%s" % (user, out))
    check(re.search(r"mech=PLAIN user=%s result=failed" % re.escape(USER), srv.log_text()),
          "failure not logged")


@g.test("dovecot-user-name-for-sender-login-match-and-relay")
def _(srv):
    need_setup()
    c, _ = ehlo_with_dovecot(srv)
    # no AUTH: only local recipients
    c.mail(USER)
    c.rcpt("someone@example.net", 554, "5.7.1")
    c.cmd("RSET", 250)
    c.quit()
    c = srv.connect(port=srv.ports["sub"])
    c.ehlo()
    c.cmd("MAIL FROM:<%s>" % USER, 530, "5.7.0")   # submission requires AUTH
    c.starttls(tls_client_context(CA), HOST)
    c.ehlo()
    # the client says ALICE@LOCALHOST; Dovecot answers user=alice@localhost (%Lu)
    c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER.upper(), PW)), 235, "2.7.0")
    c.cmd("MAIL FROM:<demo@localhost>", 553, "5.7.1")   # not alice's address
    c.mail(USER)
    c.rcpt("someone@example.net")                      # authenticated: may relay
    c.cmd("RSET", 250)
    c.quit()
    check(re.search(r"mech=PLAIN user=%s result=ok" % re.escape(USER), srv.log_text()),
          "the log does not name Dovecot's user name %s" % USER)


@g.test("pipelined-commands-wait-for-dovecot")
def _(srv):
    need_setup()
    c, _ = ehlo_with_dovecot(srv)
    # RFC 2920 pipelining after AUTH: MAIL and RCPT must be read only once Dovecot said OK
    c.send("AUTH CRAM-MD5\r\n")
    chal = base64.b64decode(c.expect(c.read(), 334).lines[0][4:])
    digest = hmac.new(PW.encode(), chal, "md5").hexdigest()
    c.send(b64("%s %s" % (USER, digest)) + "\r\nMAIL FROM:<%s>\r\nRCPT TO:<someone@example.net>\r\n"
           "RSET\r\n" % USER)
    c.expect(c.read(), 235, "2.7.0")
    c.expect(c.read(), 250, "2.1.0")
    c.expect(c.read(), 250, "2.1.5")    # relayed: the session was authenticated by then
    c.expect(c.read(), 250)
    c.quit()


@g.test("cancel-and-bad-base64-in-relayed-exchange")
def _(srv):
    need_setup()
    c, _ = ehlo_with_dovecot(srv)
    r = c.cmd("AUTH SCRAM-SHA-256", 334)
    check(r.lines[0] in ("334 ", "334"), "SCRAM starts with an empty challenge: %r" % r.lines)
    c.cmd("*", 501, "5.7.0")
    r = c.cmd("AUTH CRAM-MD5", 334)
    challenge = base64.b64decode(r.lines[0][4:])
    check(challenge.startswith(b"<") and challenge.endswith(b">"),
          "Dovecot's CRAM-MD5 challenge relayed: %r" % challenge)
    c.cmd("not base64!", 501, "5.5.2")
    # the session goes on: a proper exchange still works
    r = c.cmd("AUTH CRAM-MD5", 334)
    chal = base64.b64decode(r.lines[0][4:])
    digest = hmac.new(PW.encode(), chal, "md5").hexdigest()
    c.cmd(b64("%s %s" % (USER, digest)), 235, "2.7.0")
    c.quit()


g2 = Group("dovecot-auth-lockout", mailboxes=["demo", "alice"], auth_backend="dovecot",
           dovecot_auth_socket=SOCKET, auth_max_failures=2, auth_plaintext_loopback=True)


@g2.test("lockout-after-failures")
def _(srv):
    need_setup()
    c, r = ehlo_with_dovecot(srv, want="PLAIN")
    for _ in range(2):
        c.cmd("AUTH PLAIN " + b64("\0%s\0wrong" % USER), 535, "5.7.8", timeout=30)
    c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PW)), 454, "4.7.0")
    c.quit()
    check("auth lockout client=[127.0.0.1]" in srv.log_text(), "lockout not logged")


g3 = Group("dovecot-auth-down", server=False)


@g3.test("dovecot-stopped-454-and-back")
def _(make):
    need_setup()
    srv = make("down", mailboxes=["demo", "alice"], auth_backend="dovecot",
               dovecot_auth_socket=SOCKET, auth_plaintext_loopback=True)
    srv.start()
    c, _ = ehlo_with_dovecot(srv, want="PLAIN")
    c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PW)), 235, "2.7.0")
    c.quit()
    DOVECOT.stop()
    try:
        for _ in range(2):   # the lost connection, then a refused reconnection
            c = srv.connect()
            c.ehlo()
            c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PW)), 454, "4.7.0")
            c.cmd("AUTH LOGIN", 454, "4.7.0")
            c.quit()
        check(re.search(r"result=tempfail reason=auth-server-unreachable", srv.log_text()),
              "tempfail not logged")
    finally:
        DOVECOT.start()
    c = srv.connect()
    c.ehlo()
    c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PW)), 235, "2.7.0")
    c.mail(USER)
    c.rcpt("someone@example.net")
    c.cmd("RSET", 250)
    c.quit()


@g3.test("silent-socket-times-out-454")
def _(make):
    need_setup()
    path = os.path.join(WORK, "silent.sock")
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(path)
    os.chmod(path, 0o666)
    lsock.listen(8)
    held = []
    stop = threading.Event()

    def accept():   # accept and never say a word
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(lsock.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        # one worker: the waiting session and the other one share its event loop
        srv = make("silent", mailboxes=["demo"], auth_backend="dovecot", dovecot_auth_socket=path,
                   dovecot_auth_timeout="10s", auth_plaintext_loopback=True, workers=1)
        srv.start()
        c = srv.connect()
        r = c.ehlo()
        # no handshake ever: PLAIN and LOGIN are assumed
        check(auth_line(r) == ["AUTH PLAIN LOGIN"], "EHLO before any handshake: %r" % r.lines)
        c.send("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PW)) + "\r\nNOOP\r\n")
        # meanwhile the worker serves another client: nothing blocks on the silent socket
        c2 = srv.connect()
        c2.ehlo()
        c2.cmd("NOOP", 250)
        c2.quit()
        r = c.read(timeout=30)
        c.expect(r, 454, "4.7.0")
        c.expect(c.read(), 250)     # the pipelined NOOP, read only after the answer
        c.quit()
        check("dovecot auth: connection to %s lost: no handshake" % path in srv.log_text(),
              "handshake timeout not logged")
    finally:
        stop.set()
        t.join()
        for s in held:
            s.close()
        lsock.close()


if __name__ == "__main__":
    run_main()
