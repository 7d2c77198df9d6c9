"""ternlib - the integration test harness: real `tern serve` processes and real clients.

A test file defines groups; each group starts its own `BUILD/tern serve -c CONF` on 127.0.0.1
(a free port, a fresh spool and Maildir tree under a temp dir), runs its tests against it and
stops it with SIGTERM, checking that it exits 0 and that no sanitizer report is in its log.
Every test prints exactly one line, "PASS name" or "FAIL name: reason" (details follow on
lines indented with spaces, so a runner counts only the first kind). Usage from a test file:

    from ternlib import Group, run_main, Smtp, TestFailure
    g = Group("smtp", mailboxes=["demo"])

    @g.test("noop")
    def _(srv):
        c = srv.connect(); c.ehlo(); c.cmd("NOOP", 250, "2.0.0")

    if __name__ == "__main__":
        run_main()        # argv: BUILD_DIR [name-substring...]

TLS (docs/tls.md): Group("g", tls_certificate=["CERT KEY", ...], listen_opts="starttls",
listeners={"smtps": "smtps", "sub": "submission require-tls"}) adds configuration lines (a list
value gives one line per item) and more listeners on free ports (srv.ports["smtps"]);
mkcerts() makes a throwaway PKI; srv.connect(port=..., tls=ctx) and Smtp.starttls(ctx) speak
TLS with Python's ssl module (tls_client_context(cafile)).

Run a file by hand: /usr/bin/python3 tests/integration/test_smtp.py build/san [filter]
(inside `netns-run` as tests/run-all.sh does, or directly: ports are picked free).
Environment: TERN_TESTKIT (default REPO/../shared/testkit), TERN_IT_KEEP=1 keeps temp dirs,
TERN_TEST_USER (the unprivileged user tern runs as when started as root; default tern if
that user exists, else nobody).
"""

import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TESTKIT = os.environ.get("TERN_TESTKIT") or os.path.join(os.path.dirname(REPO), "shared", "testkit")

# Reply line: code, separator, optional enhanced status code (RFC 3463), text.
REPLY_RE = re.compile(rb"^(\d{3})([ -])(.*)$")
ESC_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")
QID_RE = re.compile(r"queued as ([0-9A-Za-z]+)")
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|"
                          r"SUMMARY: (Address|Undefined|Leak)")

# TERN_WRAPPER: a command prefix for every tern started here, e.g. valgrind (`make
# check-valgrind`, docs/testing.md). Under it tern runs many times slower, so the harness's
# own waits are scaled by TERN_IT_SLOW (default 10 with a wrapper, else 1). Timeouts that a
# test sets in tern's configuration are not scaled.
WRAPPER = shlex.split(os.environ.get("TERN_WRAPPER", ""))
SLOW = float(os.environ.get("TERN_IT_SLOW") or (10 if WRAPPER else 1))

STARTUP_TIMEOUT = 20 * SLOW  # seconds; sanitizer builds start slowly on a busy 2-core machine
STOP_TIMEOUT = 30 * SLOW


class TestFailure(Exception):
    """A check failed; the message is the reason printed after "FAIL name: "."""


class Skip(Exception):
    """The test cannot run here (missing tool); printed as a FAIL unless TERN_IT_ALLOW_SKIP."""


def run_tool(cmd, timeout=60, input=None):
    """Run a client program (swaks, openssl, curl...); returns (exit status, stdout + stderr as
    text). A missing program or one that overruns timeout is a TestFailure."""
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise TestFailure("%s is not installed (scripts/install-deps.sh test)" % cmd[0])
    except subprocess.TimeoutExpired:
        raise TestFailure("%s did not finish within %ss" % (" ".join(cmd), timeout))
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def build_dir():
    if len(sys.argv) < 2:
        sys.exit("usage: %s BUILD_DIR [name-filter...]" % sys.argv[0])
    b = sys.argv[1]
    return b if os.path.isabs(b) else os.path.join(REPO, b)


def free_port():
    """A port nothing is bound to right now, below Linux's ephemeral range (32768-60999) so
    that no client socket of a test running in parallel can take it before tern binds it."""
    import random
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise TestFailure("no free port found in 20000-31999")


def wait_listen(port, timeout=STARTUP_TIMEOUT):
    """testkit/wait-listen: polls the socket table, never connects (no probe in tern's log)."""
    r = subprocess.run([os.path.join(TESTKIT, "wait-listen"), "-t", str(timeout), "127.0.0.1",
                        str(port)], capture_output=True, text=True)
    return r.returncode == 0


def poll(fn, timeout, interval=0.05):
    """Call fn until it returns something true or timeout seconds pass (times TERN_IT_SLOW);
    returns the last value."""
    timeout *= SLOW
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---- an SMTP client that shows the wire ---------------------------------------------------

class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines          # full lines as text, without CRLF

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def esc(self):
        """The enhanced status code of the first line, or None."""
        m = ESC_RE.match(self.lines[0][4:]) if self.lines else None
        return "%s.%s.%s" % m.groups() if m else None

    def __repr__(self):
        return "Reply(%r)" % self.text


class Smtp:
    """A raw SMTP connection. Keeps a transcript for failure messages; every expect() checks
    the reply code and, when given, the enhanced status code."""

    def __init__(self, port, host="127.0.0.1", timeout=15, tls=None, server_hostname=None):
        """tls: an ssl.SSLContext for implicit TLS (RFC 8314: the handshake comes first, then
        the greeting); server_hostname is the SNI name and the name verified."""
        self.sock = socket.create_connection((host, port), timeout=timeout * SLOW)
        self.transcript = []
        if tls is not None:
            try:
                self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname)
            except (ssl.SSLError, OSError):
                self.sock.close()
                raise
            self.log("--", "TLS %s %s" % (self.sock.version(), self.sock.cipher()[0]))
        self.f = self.sock.makefile("rb")
        self.greeting = self.read()

    def starttls(self, ctx, server_hostname=None, code=220, esc="2.0.0"):
        """STARTTLS (RFC 3207), then the handshake with ctx. Returns the reply; the session is
        TLS afterwards (and, per RFC 3207 4.2, knows nothing from before: EHLO again)."""
        r = self.cmd("STARTTLS", code, esc)
        if r.code == 220:
            self.wrap_tls(ctx, server_hostname)
        return r

    def wrap_tls(self, ctx, server_hostname=None):
        """The TLS handshake on the open connection (after a 220 to STARTTLS)."""
        self.f.close()   # the buffered reader only; the socket stays open
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.log("--", "TLS %s %s" % (self.sock.version(), self.sock.cipher()[0]))
        self.f = self.sock.makefile("rb")
        return self.sock

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def log(self, direction, data):
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        for line in data.splitlines() or [""]:
            self.transcript.append("%s %s" % (direction, line[:200]))
        del self.transcript[:-60]

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.log("C:", data if len(data) < 2000 else data[:300] + b"...[%d octets]" % len(data))
        self.sock.sendall(data)

    def read(self, timeout=None):
        """One (possibly multi-line) reply. Raises TestFailure on EOF or timeout."""
        if timeout is not None:
            self.sock.settimeout(timeout * SLOW)
        lines = []
        try:
            while True:
                raw = self.f.readline()
                if not raw:
                    raise TestFailure("connection closed while waiting for a reply\n" + self.dump())
                self.log("S:", raw.rstrip(b"\r\n"))
                check(raw.endswith(b"\r\n"), "reply line not ended by CRLF: %r" % raw)
                m = REPLY_RE.match(raw.rstrip(b"\r\n"))
                check(m, "malformed reply line %r\n%s" % (raw, self.dump()))
                lines.append(raw.rstrip(b"\r\n").decode("utf-8", "replace"))
                check(not lines or lines[0][:3] == m.group(1).decode(),
                      "multi-line reply changes code: %r" % lines)
                if m.group(2) == b" ":
                    return Reply(int(m.group(1)), lines)
        except socket.timeout:
            raise TestFailure("no reply within %ss\n%s" % (self.sock.gettimeout(), self.dump()))

    def at_eof(self, timeout=5):
        """True if the server closes the connection (no more data) within timeout seconds."""
        self.sock.settimeout(timeout * SLOW)
        try:
            data = self.f.read1(4096) if hasattr(self.f, "read1") else self.f.read(1)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        if data:
            self.log("S:", data)
        return not data

    def dump(self):
        return "    transcript:\n" + "\n".join("      " + l for l in self.transcript)

    def expect(self, reply, code, esc=None):
        """Check a reply: code is an int or a tuple of ints, esc an enhanced code string
        ("5.5.2"), a tuple of them, or "any" (some enhanced code must be there)."""
        codes = code if isinstance(code, tuple) else (code,)
        if reply.code not in codes:
            raise TestFailure("expected %s, got %r\n%s" % ("/".join(map(str, codes)), reply.text,
                                                          self.dump()))
        if esc is not None:
            escs = esc if isinstance(esc, tuple) else (esc,)
            got = reply.esc
            if got is None or ("any" not in escs and got not in escs):
                raise TestFailure("expected enhanced code %s in %r\n%s" % (
                    "/".join(escs), reply.text, self.dump()))
            check(got[0] == str(reply.code)[0],
                  "enhanced code class differs from reply code: %r" % reply.text)
        return reply

    def cmd(self, line, code=None, esc=None, timeout=None):
        self.send(line + "\r\n")
        r = self.read(timeout)
        if code is not None:
            self.expect(r, code, esc)
        return r

    def ehlo(self, name="client.test"):
        return self.cmd("EHLO " + name, 250)

    def helo(self, name="client.test"):
        return self.cmd("HELO " + name, 250)

    def mail(self, addr="a@example.org", params=""):
        return self.cmd("MAIL FROM:<%s>%s" % (addr, (" " + params) if params else ""), 250,
                        "2.1.0")

    def rcpt(self, addr="demo@localhost", code=250, esc="2.1.5"):
        return self.cmd("RCPT TO:<%s>" % addr, code, esc)

    def data(self, body):
        """DATA with body as given (bytes or str, already dot-stuffed, CRLF lines, without the
        final ".CRLF"); returns the queue ID from the 250 reply."""
        self.cmd("DATA", 354)
        if isinstance(body, str):
            body = body.encode()
        if body and not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.send(body + b".\r\n")
        r = self.expect(self.read(), 250, "2.0.0")
        return qid_of(r.text)

    def quit(self):
        r = self.cmd("QUIT", 221, "2.0.0")
        check(self.at_eof(), "connection still open after 221\n" + self.dump())
        self.close()
        return r


def qid_of(text):
    m = QID_RE.search(text)
    check(m, "no 'queued as QID' in %r" % text)
    return m.group(1)


def message(subject, body="Hello from the tern integration tests.\r\n", extra=""):
    """A small RFC 5322 message with CRLF line ends."""
    return ("From: <a@example.org>\r\nTo: <demo@localhost>\r\nSubject: %s\r\n"
            "Message-ID: <%s@client.test>\r\n%s\r\n%s" % (subject, subject, extra, body))


def unique(prefix):
    unique.n += 1
    return "%s-%d-%d-%d" % (prefix, os.getpid(), int(time.time() * 1000) % 100000, unique.n)


unique.n = 0


# ---- TLS helpers ---------------------------------------------------------------------------

def mkcerts(directory, *names, keytype="ec", ca_from=None):
    """testkit/mkcerts: a test CA and a leaf for names (the first is the subject CN) in
    directory; returns the directory. ca_from: another mkcerts directory whose CA signs this
    leaf too (its ca.crt/ca.key are copied first, as mkcerts reuses a CA present in DIR)."""
    os.makedirs(directory, exist_ok=True)
    if ca_from:
        for f in ("ca.crt", "ca.key"):
            shutil.copy2(os.path.join(ca_from, f), os.path.join(directory, f))
    r = subprocess.run([os.path.join(TESTKIT, "mkcerts"), "-k", keytype, directory] + list(names),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "mkcerts failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr))
    return directory


def tls_client_context(cafile=None, minimum=None, maximum=None, verify=True):
    """An ssl client context trusting cafile (the test CA) only, checking the host name;
    minimum/maximum are ssl.TLSVersion values."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(cafile=cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


# ---- the server ---------------------------------------------------------------------------

def default_user():
    """The user tern runs as when the tests run as root: "tern" where it exists (created by
    scripts/install-deps.sh), else "nobody"."""
    import pwd
    try:
        pwd.getpwnam("tern")
        return "tern"
    except KeyError:
        return "nobody"


class Tern:
    """One tern instance: its temp dir, generated configuration, process and log.

    Options become configuration lines (see render_config); mailboxes are local parts of
    the first domain, or full addresses. listen_opts is appended to the first listener's line
    ("starttls", "no-starttls require-tls"...); listeners adds more listeners on free ports,
    {label: "KIND [OPTIONS]"} (e.g. {"smtps": "smtps", "sub": "submission"}), whose ports are
    in self.ports[label] (self.ports["main"] is self.port). An option whose value is a list
    or tuple gives one line per item (tls_certificate=["CERT KEY", "CERT2 KEY2"])."""

    def __init__(self, build, name, mailboxes=("demo", "alice", "bob"), domains=("localhost",),
                 listen_opts="", listeners=None, **opts):
        self.build = build
        self.name = name
        self.binary = os.path.join(build, "tern")
        self.wrapper = WRAPPER   # a test may run its server without valgrind (see test_resources)
        base = os.environ.get("TERN_IT_TMP") or None
        self.dir = tempfile.mkdtemp(prefix="tern-it-%s." % name, dir=base)
        os.chmod(self.dir, 0o755)          # Dovecot's unprivileged helpers must traverse it
        self.spool = os.path.join(self.dir, "spool")
        self.maildir = os.path.join(self.dir, "mail")
        self.conf = os.path.join(self.dir, "tern.conf")
        self.logfile = os.path.join(self.dir, "tern.log")
        self.port = free_port()
        self.listen_opts = listen_opts
        self.listeners = dict(listeners or {})
        self.ports = {"main": self.port}
        for label in self.listeners:
            port = free_port()
            while port in self.ports.values():
                port = free_port()
            self.ports[label] = port
        self.domains = list(domains)
        self.mailboxes = list(mailboxes)
        self.opts = {
            "hostname": "mx.tern.test",
            "workers": 2,
            "max_message_size": 1000000,
            "shutdown_grace": int(2 * SLOW),  # open sessions at a reload must outlive our waits
            "retry_min": 1,
            "retry_max": 2,
            "log_level": "debug",
        }
        self.opts.update(opts)
        self.user = None
        if os.geteuid() == 0:
            self.user = os.environ.get("TERN_TEST_USER") or default_user()
        for d in (self.spool, self.maildir):
            os.makedirs(d, exist_ok=True)
        self.chown_tree(self.dir)
        self.proc = None
        self.logf = None
        self.starts = 0
        self.write_config()

    # configuration

    def addresses(self):
        return [m if "@" in m else "%s@%s" % (m, self.domains[0]) for m in self.mailboxes]

    def render_config(self):
        """The configuration file text (keywords: docs/configuration.md)."""
        o = self.opts
        lines = ["# generated by tests/integration/ternlib.py for group %s" % self.name,
                 "hostname %s" % o["hostname"],
                 ("listen 127.0.0.1:%d smtp %s" % (self.port, self.listen_opts)).rstrip(),
                 "spool %s" % self.spool,
                 "maildir %s/%%d/%%u" % self.maildir,
                 "log stderr"]
        for label, spec in self.listeners.items():
            lines.append("listen 127.0.0.1:%d %s" % (self.ports[label], spec))
        if self.user:
            lines.append("user %s" % self.user)
        for d in self.domains:
            lines.append("local_domain %s" % d)
        for a in self.addresses():
            lines.append("mailbox %s" % a)
        for k, v in sorted(o.items()):
            if k in ("hostname",) or v is None:
                continue
            if isinstance(v, bool):
                v = "on" if v else "off"
            for item in (v if isinstance(v, (list, tuple)) else [v]):
                lines.append("%s %s" % (k, item))
        return "\n".join(lines) + "\n"

    def write_config(self):
        tmp = self.conf + ".new"
        with open(tmp, "w") as f:
            f.write(self.render_config())
        os.rename(tmp, self.conf)

    def chown_tree(self, path):
        if not self.user:
            return
        import pwd
        pw = pwd.getpwnam(self.user)
        for root, dirs, files in os.walk(path):
            for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                os.lchown(n, pw.pw_uid, pw.pw_gid)

    # process control

    def start(self):
        check(os.access(self.binary, os.X_OK), "%s is not built" % self.binary)
        self.logf = open(self.logfile, "ab")
        self.logf.write(b"==== tern start %d (%s) ====\n" % (self.starts + 1, self.name.encode()))
        self.logf.flush()
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.proc = subprocess.Popen(self.wrapper + [self.binary, "serve", "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.dir)
        self.starts += 1
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TestFailure("tern serve exited with status %s at startup\n%s" % (
                    self.proc.returncode, self.log_tail()))
            if all(wait_listen(p, 1) for p in self.ports.values()):
                return self
        raise TestFailure("tern serve did not listen on 127.0.0.1:%s within %ss\n%s" % (
            ",".join(str(p) for p in self.ports.values()), STARTUP_TIMEOUT, self.log_tail()))

    def send_signal(self, sig):
        check(self.proc and self.proc.poll() is None, "tern is not running\n" + self.log_tail())
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM; returns the exit status (raises if it does not exit)."""
        if not self.proc:
            return 0
        p, self.proc = self.proc, None
        if p.poll() is None:
            p.send_signal(sig)
        try:
            rc = p.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise TestFailure("tern did not exit within %ss of SIGTERM\n%s" % (
                STOP_TIMEOUT, self.log_tail()))
        finally:
            if self.logf:
                self.logf.close()
                self.logf = None
        return rc

    def stop_checked(self):
        rc = self.stop()
        check(rc == 0, "tern exited with status %s after SIGTERM (want 0)\n%s" % (rc, self.log_tail()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        if self.proc:
            try:
                self.stop()
            except TestFailure:
                pass
        if not os.environ.get("TERN_IT_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # logs

    def log_text(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.logfile)
        except OSError:
            return 0

    def log_tail(self, since=0, lines=80):
        try:
            with open(self.logfile, "rb") as f:
                f.seek(since)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "    (no log)"
        ls = text.splitlines()
        cut = ls[-lines:]
        head = "    server log (%s)%s:\n" % (self.logfile,
                                             ", last %d lines" % lines if len(ls) > lines else "")
        return head + "\n".join("    | " + l for l in cut)

    def sanitizer_reports(self):
        return [l for l in self.log_text().splitlines() if SANITIZER_RE.search(l)]

    # clients and mailboxes

    def connect(self, timeout=15, port=None, tls=None, server_hostname=None):
        """A client with its 220 greeting checked; port defaults to the first listener (a label
        of self.ports or a number), tls is an SSLContext for an implicit-TLS listener."""
        if isinstance(port, str):
            port = self.ports[port]
        c = Smtp(port or self.port, timeout=timeout, tls=tls, server_hostname=server_hostname)
        c.expect(c.greeting, 220)
        return c

    def mailbox_dir(self, addr):
        local, _, domain = addr.partition("@")
        return os.path.join(self.maildir, domain or self.domains[0], local)

    def messages(self, addr, sub=("new",)):
        """Paths of the messages in a mailbox's new/ (and other subdirs when asked)."""
        out = []
        for s in sub:
            d = os.path.join(self.mailbox_dir(addr), s)
            try:
                out += [os.path.join(d, n) for n in sorted(os.listdir(d)) if not n.startswith(".")]
            except (FileNotFoundError, NotADirectoryError):
                pass
        return out

    def find(self, addr, marker):
        """Messages in addr's new/ whose content contains marker (bytes or str)."""
        if isinstance(marker, str):
            marker = marker.encode()
        out = []
        for p in self.messages(addr):
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            if marker in data:
                out.append((p, data))
        return out

    def wait_delivery(self, addr, marker, count=1, timeout=20):
        """Wait until exactly `count` messages with marker are in addr's new/; returns their
        contents. Fails with the server log if they do not arrive."""
        got = poll(lambda: len(self.find(addr, marker)) >= count and self.find(addr, marker), timeout)
        if not got:
            raise TestFailure("message %r not delivered to %s within %ss (found %d)\n%s" % (
                marker if isinstance(marker, str) else marker[:40], addr, timeout,
                len(self.find(addr, marker)), self.log_tail()))
        check(len(got) == count, "%d copies of %r in %s, want %d" % (len(got), marker, addr, count))
        return [d for _, d in got]

    def queue_files(self):
        """Every file under the spool (queue/, state/, tmp/...), relative names."""
        out = []
        for root, _, files in os.walk(self.spool):
            out += [os.path.relpath(os.path.join(root, f), self.spool) for f in files]
        return sorted(out)

    def queued(self, qid):
        return [f for f in self.queue_files() if qid in f]


def norm(data):
    """Line ends as LF: Maildir files use the local convention (tern writes LF, as Dovecot
    expects), the wire uses CRLF. Compare content after norm() on both sides."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return data.replace(b"\r\n", b"\n")


def headers_of(msg):
    """The header block of a delivered message as text, LF line ends."""
    return norm(msg).split(b"\n\n", 1)[0].decode("utf-8", "replace")


def body_of(msg):
    """The body of a message (after the first empty line), LF line ends."""
    parts = norm(msg).split(b"\n\n", 1)
    return parts[1] if len(parts) == 2 else b""


def header_values(msg, name):
    """Values of every header field `name` (case-insensitive), unfolded."""
    text = headers_of(msg)
    text = re.sub(r"\n[ \t]+", " ", text)
    out = []
    for line in text.split("\n"):
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            out.append(v.strip())
    return out


# ---- groups and the runner -----------------------------------------------------------------

class Group:
    """Tests that share one tern instance. server=False: the tests manage servers themselves
    (they get a factory: srv = make("name", **opts))."""

    all = []

    def __init__(self, name, server=True, **opts):
        self.name = name
        self.server = server
        self.opts = opts
        self.tests = []
        Group.all.append(self)

    def test(self, name):
        def deco(fn):
            self.tests.append((name, fn))
            return fn
        return deco


_print_lock = threading.Lock()


def out(line):
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def report_pass(name, secs):
    out("PASS %s (%.1fs)" % (name, secs))


def report_fail(name, reason):
    first, _, rest = str(reason).partition("\n")
    out("FAIL %s: %s" % (name, first))
    if rest:
        out(rest if rest.startswith(" ") else "\n".join("    " + l for l in rest.splitlines()))


def selected(name, filters):
    return not filters or any(f in name for f in filters)


def run_group(build, g, filters):
    tests = [(n, fn) for n, fn in g.tests if selected(n, filters)]
    if not tests:
        return 0
    failed = 0
    srv = None
    made = []

    def make(name, **opts):
        t = Tern(build, "%s-%s" % (g.name, name), **opts)
        made.append(t)
        return t

    if g.server:
        try:
            srv = make("main", **g.opts)
            srv.start()
        except Exception as e:  # noqa: BLE001 - every test of the group fails with the cause
            for n, _ in tests:
                report_fail(n, "server did not start: %s" % e)
            for t in made:
                t.cleanup()
            return len(tests)
    for n, fn in tests:
        t0 = time.monotonic()
        mark = srv.log_size() if srv else 0
        try:
            if srv and not srv.running():
                raise TestFailure("tern is not running before the test (exit status %s)\n%s" % (
                    srv.proc.returncode if srv.proc else "?", srv.log_tail()))
            fn(srv if g.server else make)
            report_pass(n, time.monotonic() - t0)
        except TestFailure as e:
            failed += 1
            msg = str(e)
            if srv and "server log" not in msg:
                msg += "\n" + srv.log_tail(mark, 40)
            report_fail(n, msg)
        except Exception as e:  # noqa: BLE001 - a test bug or a client exception
            failed += 1
            msg = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=4))
            if srv:
                msg += "\n" + srv.log_tail(mark, 40)
            report_fail(n, msg)
    # Every server the group started must stop cleanly on SIGTERM and be sanitizer-clean.
    for t in made:
        label = "%s-exit" % t.name
        try:
            if t.proc:
                t.stop_checked()
            reports = t.sanitizer_reports()
            check(not reports, "sanitizer report in the server log:\n%s\n%s" % (
                "\n".join("    " + r for r in reports[:10]), t.log_tail()))
            if t.starts:
                report_pass(label, 0)
        except TestFailure as e:
            failed += 1
            report_fail(label, e)
        t.cleanup()
    return failed


def run_main():
    build = build_dir()
    filters = sys.argv[2:]
    if not os.path.isdir(TESTKIT):
        out("FAIL testkit: no testkit at %s (set TERN_TESTKIT)" % TESTKIT)
        sys.exit(1)
    failed = 0
    for g in Group.all:
        failed += run_group(build, g, filters)
    sys.exit(1 if failed else 0)
