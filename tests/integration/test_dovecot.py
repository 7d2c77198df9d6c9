#!/usr/bin/python3
"""test_dovecot.py - what tern delivers is readable by a real IMAP server.

Delivers messages through tern, then starts a private Dovecot (dovecot.conf.in: listens on
127.0.0.1 only, mail_location maildir:~/ with each user's home at MAILDIR/localhost/USER)
and reads them back with imaplib: LOGIN, SELECT INBOX, SEARCH, FETCH; compares subject and body.

    /usr/bin/python3 tests/integration/test_dovecot.py BUILD_DIR [name-filter...]
"""
import grp
import imaplib
import os
import pwd
import shutil
import subprocess
import time

from ternlib import (HERE, Group, TestFailure, body_of, check, free_port, norm, run_main, unique,
                     wait_listen)

g = Group("dovecot")
PASSWORD = "tern-test-pw"


class Dovecot:
    def __init__(self, srv, user):
        self.dir = os.path.join(srv.dir, "dovecot")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.log = os.path.join(self.dir, "dovecot.log")
        # Dovecot refuses to run its login processes as root, and mail as uid 0: use the owner
        # of the Maildir tern wrote (tern's unprivileged user), or nobody.
        st = os.stat(srv.mailbox_dir(user))
        uid, gid = st.st_uid, st.st_gid
        if uid == 0:
            nobody = pwd.getpwnam("nobody")
            uid, gid = nobody.pw_uid, nobody.pw_gid
            for root, dirs, files in os.walk(srv.maildir):
                for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                    os.lchown(n, uid, gid)
        # Its own helper processes run as us, or as nobody when we are root.
        helper = pwd.getpwuid(os.geteuid()) if os.geteuid() != 0 else pwd.getpwnam("nobody")
        login, login_group = helper.pw_name, grp.getgrgid(helper.pw_gid).gr_name
        with open(os.path.join(HERE, "dovecot.conf.in")) as f:
            conf = f.read()
        for k, v in (("DIR", self.dir), ("PORT", str(self.port)), ("USER", login),
                     ("GROUP", login_group), ("PASSWORD", PASSWORD), ("MAIL_UID", str(uid)),
                     ("MAIL_GID", str(gid)), ("MAILDIR", srv.maildir)):
            conf = conf.replace("@%s@" % k, v)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = None

    def start(self):
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        check(os.access(binary, os.X_OK), "dovecot is not installed (apt-get install dovecot-imapd)")
        self.proc = subprocess.Popen([binary, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if not wait_listen(self.port, 15):
            raise TestFailure("dovecot did not listen on 127.0.0.1:%d\n%s" % (self.port,
                                                                            self.log_text()))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self):
        try:
            with open(self.log) as f:
                return "    dovecot log:\n" + "".join("    | " + l for l in f.readlines()[-30:])
        except OSError:
            return "    (no dovecot log)"


def imap_fetch_all(port, user):
    """(subject, body) of every message in user's INBOX, via IMAP."""
    m = imaplib.IMAP4("127.0.0.1", port, timeout=20)
    try:
        typ, _ = m.login(user, PASSWORD)
        check(typ == "OK", "IMAP LOGIN %s" % typ)
        typ, data = m.select("INBOX", readonly=True)
        check(typ == "OK", "SELECT INBOX: %s %r" % (typ, data))
        typ, data = m.search(None, "ALL")
        check(typ == "OK", "SEARCH: %s" % typ)
        out = []
        for num in data[0].split():
            typ, parts = m.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])")
            check(typ == "OK", "FETCH %s: %s" % (num, typ))
            items = [p for p in parts if isinstance(p, tuple)]
            subj = items[0][1].decode("utf-8", "replace").strip()
            subj = subj.split(":", 1)[1].strip() if ":" in subj else subj
            out.append((subj, items[1][1]))
        return out
    finally:
        try:
            m.logout()
        except Exception:  # noqa: BLE001
            pass


@g.test("dovecot-imap-reads-delivery")
def _(srv):
    s1, s2 = unique("imap"), unique("imap-bdat")
    b1 = "Hello over IMAP.\r\n.leading dot\r\nGr\u00fc\u00dfe\r\n"
    c = srv.connect()
    c.ehlo()
    c.mail(params="BODY=8BITMIME")
    c.rcpt("alice@localhost")
    c.data(("Subject: %s\r\n\r\n%s" % (s1, b1.replace("\r\n.", "\r\n.."))).encode())
    b2 = b"chunked body\r\n" * 50
    c.mail()
    c.rcpt("alice@localhost")
    data = ("Subject: %s\r\n\r\n" % s2).encode() + b2
    c.send(b"BDAT %d LAST\r\n" % len(data) + data)
    c.expect(c.read(), 250, "2.0.0")
    c.quit()
    srv.wait_delivery("alice@localhost", s1)
    srv.wait_delivery("alice@localhost", s2)
    time.sleep(0.2)
    d = Dovecot(srv, "alice@localhost")
    d.start()
    try:
        msgs = dict(imap_fetch_all(d.port, "alice"))
    except (imaplib.IMAP4.error, OSError) as e:
        d.stop()                    # flushes its log
        raise TestFailure("IMAP: %s\n%s" % (e, d.log_text()))
    finally:
        d.stop()
    check(s1 in msgs and s2 in msgs, "IMAP INBOX subjects %r lack %s, %s" % (list(msgs), s1, s2))
    # IMAP speaks CRLF whatever the file holds.
    check(msgs[s1] == b1.encode("utf-8"), "IMAP body %r, want %r" % (msgs[s1], b1))
    check(msgs[s2] == b2, "IMAP body of the BDAT message differs")
    # What IMAP shows is what is in the file.
    files = srv.messages("alice@localhost", ("new", "cur"))
    check(len(files) == 2, "alice's Maildir holds %d messages, want 2" % len(files))
    for p in files:
        with open(p, "rb") as f:
            raw = f.read()
        check(body_of(raw) in (norm(b1), norm(b2)), "file %s body differs from IMAP" % p)


if __name__ == "__main__":
    run_main()
