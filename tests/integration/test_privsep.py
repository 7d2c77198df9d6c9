#!/usr/bin/python3
"""test_privsep.py - privilege separation when tern is started as root (docs/security.md).

With the TLS key and the users file owned by root, mode 0600:
- the supervisor runs as root; every worker and the queue manager run as the unprivileged
  user: real, effective, saved and file-system uid and gid in /proc/PID/status, and no
  supplementary group but its own;
- no capability is left in a child (CapEff, CapPrm zero), and it is not dumpable (its
  /proc/PID files belong to root), so no other process of that user can read its memory;
- opening the key and the users file with a child's credentials (uid, gid and groups read
  from its /proc/PID/status) fails with EACCES, and no child holds a descriptor of either
  file, so after start-up a worker cannot read them again;
- the children still do their work: a message over STARTTLS with AUTH is accepted and
  delivered, and a worker restarted after a crash runs as the user too;
- the spool and the Maildirs belong to the unprivileged user.

    /usr/bin/python3 tests/integration/test_privsep.py BUILD_DIR [name-filter...]
"""
import os
import pwd
import re
import signal
import smtplib
import ssl
import subprocess
import tempfile

from ternlib import (Group, Skip, build_dir, check, mkcerts, out, poll, run_main,
                     tls_client_context, unique)

g = Group("privsep", server=False)
PW = "privsep test password"


def status(pid):
    with open("/proc/%d/status" % pid) as f:
        text = f.read()
    fields = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.split()
    return fields


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


def comm(pid):
    with open("/proc/%d/comm" % pid) as f:
        return f.read().strip()


def open_as(uid, gid, groups, path):
    """Try to read path with exactly these credentials (a forked child drops to them)."""
    r = os.fork()
    if r == 0:
        code = 3
        try:
            os.setgroups(groups)
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            try:
                with open(path, "rb") as f:
                    f.read(1)
                code = 0
            except PermissionError:
                code = 1
            except OSError:
                code = 2
        finally:
            os._exit(code)
    _, st = os.waitpid(r, 0)
    return os.waitstatus_to_exitcode(st)


@g.test("children-unprivileged-cannot-read-key-or-users")
def _(make):
    if os.geteuid() != 0:
        raise Skip("needs root")
    work = tempfile.mkdtemp(prefix="tern-it-privsep.")
    os.chmod(work, 0o755)
    pki = mkcerts(os.path.join(work, "pki"), "mx.tern.test", "localhost", "127.0.0.1")
    users = os.path.join(work, "users")
    r = subprocess.run([os.path.join(build_dir(), "tern"), "user", "-f", users, "add",
                        "alice@localhost", "--password", PW, "--iterations", "4096"],
                       capture_output=True, text=True)
    check(r.returncode == 0, "tern user add failed: %s%s" % (r.stdout, r.stderr))
    key = os.path.join(pki, "server.key")
    for path in (key, users):
        os.chown(path, 0, 0)
        os.chmod(path, 0o600)
    os.chmod(pki, 0o755)
    srv = make("root", mailboxes=["demo", "alice"], workers=2, users_file=users,
               tls_certificate="%s %s" % (os.path.join(pki, "server-chain.crt"), key),
               listeners={"sub": "submission"})
    check(srv.user, "not running as root?")
    pw = pwd.getpwnam(srv.user)
    srv.start()
    sup = srv.proc.pid
    # The listening socket is bound before the children have named themselves (slow under
    # valgrind), so wait for the names rather than read them once.
    want = ["tern-qmgr", "tern-smtp", "tern-smtp"]
    names = []

    def named():
        names[:] = sorted(comm(k) for k in children(sup))
        return names == want
    poll(named, 20)
    kids = children(sup)
    check(names == want,
          "want two workers and a queue manager, got %r" % names)
    st = status(sup)
    check(st["Uid"][0] == "0", "the supervisor is not root: Uid %r" % st["Uid"])

    def check_child(k):
        # A child is named at fork, before it drops privileges: give it time to get there
        # (one that never drops fails below).
        poll(lambda: status(k)["Uid"][0] != "0" and status(k)["CapEff"][0].strip("0") == "", 10)
        st = status(k)
        want_uid = [str(pw.pw_uid)] * 4
        want_gid = [str(pw.pw_gid)] * 4
        check(st["Uid"] == want_uid, "%s pid %d: Uid %r, want %r" % (comm(k), k, st["Uid"],
                                                                     want_uid))
        check(st["Gid"] == want_gid, "%s pid %d: Gid %r, want %r" % (comm(k), k, st["Gid"],
                                                                     want_gid))
        groups = [int(x) for x in st.get("Groups", [])]
        check(set(groups) <= {pw.pw_gid}, "%s has supplementary groups %r" % (comm(k), groups))
        for cap in ("CapEff", "CapPrm", "CapAmb"):
            check(int(st[cap][0], 16) == 0, "%s keeps capabilities: %s %s" % (comm(k), cap,
                                                                              st[cap][0]))
        owner = os.stat("/proc/%d/status" % k).st_uid
        check(owner == 0, "%s pid %d is dumpable (/proc/%d/status belongs to uid %d)" % (
            comm(k), k, k, owner))
        for path in (key, users):
            rc = open_as(pw.pw_uid, pw.pw_gid, groups, path)
            check(rc == 1, "%s's credentials can open %s (result %d, want EACCES)" % (
                comm(k), path, rc))
        for fd in os.listdir("/proc/%d/fd" % k):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (k, fd))
            except OSError:
                continue
            check(target not in (key, users), "%s holds %s open (fd %s)" % (comm(k), target, fd))

    for k in kids:
        check_child(k)
    # The root-owned files are still readable by root (the test is not vacuous).
    check(open_as(0, 0, [0], key) == 0, "root cannot read the key either?")

    # They still work: STARTTLS + AUTH on submission, delivered to a Maildir.
    subj = unique("privsep")
    ctx = tls_client_context(os.path.join(pki, "ca.crt"))
    c = smtplib.SMTP("127.0.0.1", srv.ports["sub"], timeout=20)
    c.ehlo("client.test")
    c.starttls(context=ctx)
    c.ehlo("client.test")
    c.login("alice@localhost", PW)
    c.sendmail("alice@localhost", ["demo@localhost"], "Subject: %s\r\n\r\nhi\r\n" % subj)
    c.quit()
    srv.wait_delivery("demo@localhost", subj)
    for root, dirs, files in os.walk(srv.maildir):
        for n in dirs + files:
            p = os.path.join(root, n)
            check(os.lstat(p).st_uid == pw.pw_uid, "%s belongs to uid %d" % (p, os.lstat(p).st_uid))
    for root, dirs, files in os.walk(srv.spool):
        for n in dirs:
            p = os.path.join(root, n)
            check(os.lstat(p).st_uid == pw.pw_uid, "%s belongs to uid %d" % (p, os.lstat(p).st_uid))

    # A worker restarted after a crash drops privileges as well.
    victim = [k for k in kids if comm(k) == "tern-smtp"][0]
    os.kill(victim, signal.SIGKILL)
    new = poll(lambda: [k for k in children(sup) if k not in kids and comm(k) == "tern-smtp"], 20)
    check(new, "the killed worker was not restarted")
    check_child(new[0])
    out("    %d children checked: uid %d (%s), no capabilities, not dumpable, key and users "
        "file unreadable" % (len(kids) + 1, pw.pw_uid, srv.user))
    srv.stop_checked()
    import shutil
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_main()
