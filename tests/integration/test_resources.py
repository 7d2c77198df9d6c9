#!/usr/bin/python3
"""test_resources.py - running out of disk, descriptors and memory: clear replies, nothing
accepted is lost, service resumes, no crash.

Needs root: the file re-runs itself in a private mount namespace (unshare -m) where the spool
and the Maildir tree are small tmpfs mounts that the tests fill with a filler file.

- spool below min_free_space: MAIL gets 452 4.3.1 (also when SIZE= does not fit); out of
  inodes, DATA gets 452 4.3.1 (the queue file cannot be created); with
  min_free_space 0 a message that hits ENOSPC gets 452 4.3.1 at the end of data and leaves
  nothing in spool/tmp; messages accepted before (held by a full Maildir tree) stay queued
  and are all delivered once space returns, and new mail is accepted again;
- Maildir tree full: delivery is deferred (ENOSPC), retried, and done once space returns;
- a message that expires while the spool is full keeps its recipient pending until its
  bounce can be queued: the bounce reaches the sender once space returns;
- descriptors: a worker limited with prlimit --nofile answers the connections over its limit
  421 4.3.2 instead of spinning on accept() (the log shows a handful of accept failures, not
  thousands), keeps serving its open sessions and serves new ones once descriptors free up;
- tern serve started with a soft open-file limit below the hard one raises it to the hard
  limit for itself and its workers;
- memory: a worker limited with prlimit --as answers 452 4.3.1 or 421 when allocations fail,
  does not crash (same pid, no restart) and serves normally once memory is back. Run on a
  build without AddressSanitizer (ASan reserves terabytes of address space): with a
  sanitizer build the gcc build beside it (REPO/build/tern) is used when present.

    /usr/bin/python3 tests/integration/test_resources.py BUILD_DIR [name-filter...]
"""
import os
import re
import shutil
import subprocess
import sys
import time

if os.geteuid() == 0 and os.environ.get("TERN_IT_MNTNS") != "1" and shutil.which("unshare"):
    os.environ["TERN_IT_MNTNS"] = "1"
    os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable, "-B"]
              + sys.argv)

from ternlib import REPO, Group, Skip, TestFailure, check, message, out, poll, run_main, unique  # noqa: E402

g = Group("resources", server=False)
MiB = 1 << 20


def need_root():
    if os.geteuid() != 0 or os.environ.get("TERN_IT_MNTNS") != "1":
        raise Skip("needs root and unshare(1) for tmpfs mounts")


def tmpfs(srv, path, size):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % size, "tmpfs", path],
                   check=True)
    srv.chown_tree(path)


def free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path, leave):
    """Grow path/filler until at most `leave` octets are free on its file system. Unbuffered:
    when tern takes space between statvfs and the write, the write comes up short, and a
    buffered file would keep the rest and fail again with ENOSPC when it is closed."""
    name = os.path.join(path, "filler")
    with open(name, "ab", buffering=0) as f:
        while free(path) > leave:
            n = min(free(path) - leave, MiB)
            try:
                f.write(b"\0" * max(n, 4096))
            except OSError:
                break
    return name


def prlimit(srv, pid, arg):
    """Lower a limit of one of tern's processes. Without CAP_SYS_RESOURCE (containers) only
    a process of the same user may do that, so run prlimit as tern's user."""
    cmd = ["prlimit", "--pid", str(pid), arg]
    if srv.user:
        cmd = ["setpriv", "--reuid", srv.user, "--regid", srv.user, "--clear-groups"] + cmd
    subprocess.run(cmd, check=True)


def children_named(srv, name):
    pid = srv.proc.pid
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        kids = [int(x) for x in f.read().split()]
    out = []
    for k in kids:
        try:
            with open("/proc/%d/comm" % k) as f:
                if f.read().strip() == name:
                    out.append(k)
        except OSError:
            pass
    return out


def the_worker(srv):
    """The single worker's pid, once the master has forked it and it has renamed itself."""
    worker = poll(lambda: children_named(srv, "tern-smtp"), 10)
    check(len(worker) == 1, "want one worker, found %r" % worker)
    return worker[0]


def send(srv, subj, rcpt="demo@localhost", size=0):
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt(rcpt)
    qid = c.data(message(subj, body=("x" * 78 + "\r\n") * (size // 80) if size else
                         "Hello from the tern integration tests.\r\n"))
    c.quit()
    return qid


@g.test("spool-below-min-free-space-452-at-mail")
def _(make):
    need_root()
    srv = make("minfree", min_free_space="1M", max_message_size="8M")
    tmpfs(srv, srv.spool, 4 * MiB)
    srv.start()
    subj = unique("before-full")
    send(srv, subj)
    srv.wait_delivery("demo@localhost", subj)
    c = srv.connect()
    c.ehlo()
    room = free(srv.spool)                # SIZE= that fits the disk but not the reserve
    c.cmd("MAIL FROM:<a@example.org> SIZE=%d" % (room - 512 * 1024), 452, "4.3.1")
    c.cmd("MAIL FROM:<a@example.org> SIZE=%d" % (room - 2 * MiB), 250, "2.1.0")
    c.quit()
    filler = fill(srv.spool, 512 * 1024)
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.org>", 452, "4.3.1")
    c.cmd("MAIL FROM:<a@example.org> SIZE=100", 452, "4.3.1")
    c.quit()
    check("reason=spool-full" in srv.log_text(), "refusal not logged")
    os.unlink(filler)
    subj = unique("after-full")
    send(srv, subj)
    srv.wait_delivery("demo@localhost", subj)
    srv.stop_checked()


@g.test("spool-enospc-452-nothing-lost-resumes")
def _(make):
    need_root()
    srv = make("enospc", min_free_space=0, max_message_size="2M")
    tmpfs(srv, srv.spool, 4 * MiB)
    tmpfs(srv, srv.maildir, 1 * MiB)
    mfill = fill(srv.maildir, 0)          # every delivery fails: accepted mail stays queued
    srv.start()
    held = [unique("held") for _ in range(5)]
    qids = [send(srv, s) for s in held]
    # the queue manager tries and defers
    check(poll(lambda: "No space left on device" in srv.log_text(), 10),
          "no ENOSPC deferral in the log")
    for q in qids:
        check(srv.queued(q), "message %s left the spool with the Maildir full" % q)
    sfill = fill(srv.spool, 200 * 1024)
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt()
    c.cmd("DATA", 354)
    c.send("Subject: too big for the disk\r\n\r\n" + ("y" * 998 + "\r\n") * 600 + ".\r\n")
    c.expect(c.read(), 452, "4.3.1")
    c.cmd("RSET", 250)
    c.quit()
    check(poll(lambda: not [f for f in srv.queue_files() if f.startswith("tmp/")], 5),
          "a refused reception is left in spool/tmp: %r" % srv.queue_files())
    for q in qids:
        check(srv.queued(q), "message %s lost while the spool was full" % q)
    os.unlink(sfill)
    os.unlink(mfill)
    for s in held:
        srv.wait_delivery("demo@localhost", s, timeout=30)
    subj = unique("resumed")
    send(srv, subj)
    srv.wait_delivery("demo@localhost", subj)
    time.sleep(1.5)
    for s in held:
        n = len(srv.find("demo@localhost", s))
        check(n == 1, "held message delivered %d times" % n)
    srv.stop_checked()


@g.test("spool-out-of-inodes-452-at-data")
def _(make):
    # No inode left: the queue file cannot even be created, so DATA itself gets 452.
    need_root()
    srv = make("inodes", min_free_space=0)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=64,mode=0755", "tmpfs",
                    srv.spool], check=True)
    srv.chown_tree(srv.spool)
    srv.start()
    subj = unique("inodes-before")
    qid = send(srv, subj)
    srv.wait_delivery("demo@localhost", subj)
    # The delivered message's files are unlinked by the queue manager's removal thread a moment
    # later; fill the inodes only after that, or the removal frees some again.
    check(poll(lambda: not srv.queued(qid), 20), "queue files of %s not removed: %s" % (
        qid, srv.queued(qid)))
    fillers = os.path.join(srv.spool, "fillers")
    os.mkdir(fillers)
    n = 0

    def fill_inodes():
        nonlocal n
        made = 0
        while True:
            try:
                open(os.path.join(fillers, str(n)), "w").close()
            except OSError:
                return made
            n += 1
            made += 1
    fill_inodes()
    # A queue file's name goes before its inode: the removal thread closes the unlinked file
    # after the name is gone (and a message delivered at once has no state file to wait
    # for), so an inode can come back after the fill; under valgrind that took long enough
    # for DATA to get it. Fill until a whole second brings none back.
    quiet_since, deadline = time.monotonic(), time.monotonic() + 20
    while time.monotonic() - quiet_since < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
        if fill_inodes():
            quiet_since = time.monotonic()
    c = srv.connect()
    c.ehlo()
    c.mail()
    c.rcpt()
    c.cmd("DATA", 452, "4.3.1")
    c.cmd("RSET", 250)
    c.quit()
    shutil.rmtree(fillers)
    subj = unique("inodes-after")
    send(srv, subj)
    srv.wait_delivery("demo@localhost", subj)
    srv.stop_checked()


@g.test("bounce-not-lost-when-spool-full")
def _(make):
    # A message expires (queue_lifetime) while the spool is full: the bounce cannot be
    # queued, so the failure must not be recorded either; once space returns the bounce goes
    # out. Before, the recipient was marked failed and the bounce silently lost.
    need_root()
    srv = make("bounce", min_free_space=0, queue_lifetime=3, retry_min=1, retry_max=1)
    tmpfs(srv, srv.spool, 2 * MiB)
    tmpfs(srv, srv.maildir, 1 * MiB)
    srv.start()
    mfill = fill(srv.maildir, 0)
    subj = unique("expire")
    c = srv.connect()
    c.ehlo()
    c.mail("alice@localhost")
    c.rcpt("demo@localhost")
    qid = c.data(message(subj))
    c.quit()
    sfill = fill(srv.spool, 0)
    check(poll(lambda: re.search(r"cannot queue the failure DSN for qid=%s" % qid,
                                 srv.log_text()), 20),
          "the bounce never failed to queue?\n%s" % srv.log_tail())
    time.sleep(1.5)
    check(srv.queued(qid), "message %s removed although its bounce could not be queued" % qid)
    os.unlink(sfill)
    os.unlink(mfill)
    got = poll(lambda: [d for _, d in srv.find("alice@localhost", qid)], 30)
    check(got, "no bounce for %s reached the sender after space returned\n%s" % (
        qid, srv.log_tail()))
    check(b"multipart/report" in got[0], "the message to the sender is not a DSN")
    check(poll(lambda: not srv.queued(qid), 10), "expired message still queued")
    check(not srv.find("demo@localhost", subj), "the expired message was delivered")
    srv.stop_checked()


@g.test("maildir-full-deferred-then-delivered")
def _(make):
    need_root()
    srv = make("mdfull")
    tmpfs(srv, srv.maildir, 1 * MiB)
    srv.start()
    first = unique("fits")
    send(srv, first)
    srv.wait_delivery("demo@localhost", first)
    mfill = fill(srv.maildir, 0)
    subj = unique("mdfull")
    qid = send(srv, subj, size=20000)
    check(poll(lambda: re.search(r"deferred qid=%s .*No space left" % qid, srv.log_text()), 10),
          "no ENOSPC deferral logged for %s\n%s" % (qid, srv.log_tail()))
    check(srv.queued(qid), "message left the spool although the Maildir was full")
    check(not srv.find("demo@localhost", subj), "delivered into a full file system?")
    check(not [f for f in os.listdir(os.path.join(srv.mailbox_dir("demo@localhost"), "tmp"))],
          "a partial file is left in the Maildir's tmp/")
    os.unlink(mfill)
    srv.wait_delivery("demo@localhost", subj, timeout=30)
    check(poll(lambda: not srv.queued(qid), 10), "still queued after delivery")
    srv.stop_checked()


@g.test("emfile-421-no-spin-recovers")
def _(make):
    need_root()
    srv = make("emfile", workers=1, max_connections_per_ip=1000, log_level="info")
    # valgrind keeps descriptors of its own above the client's limit and virtualises
    # RLIMIT_NOFILE, so a limit set from outside does not bite: run tern itself here.
    srv.wrapper = []
    srv.start()
    w = the_worker(srv)
    base = len(os.listdir("/proc/%d/fd" % w))
    prlimit(srv, w, "--nofile=%d:%d" % (base + 4, base + 4))
    held, refused = [], []
    import socket
    for _ in range(12):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        data = b""
        while not data.endswith(b"\r\n"):
            try:
                chunk = s.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            data += chunk
        if data.startswith(b"220"):
            held.append(s)
        else:
            refused.append(data)
            s.close()
    out("    %d served, refused: %r" % (len(held), refused))
    check(held, "no connection was served at all")
    check(refused, "all 12 connections were served with a limit of %d descriptors" % (base + 4))
    for d in refused:
        check(d.startswith(b"421 4.3.2") or d == b"",
              "a connection over the descriptor limit got %r, want 421 4.3.2" % d)
    check(any(d.startswith(b"421") for d in refused), "no 421 at all: %r" % refused)
    time.sleep(2)                 # long enough for a spinning loop to log thousands of lines
    fails = len(re.findall(r"accept failed", srv.log_text()))
    check(fails <= 10, "accept failed %d times: the loop spins on EMFILE" % fails)
    # The open sessions still work, and new clients are served once descriptors are free.
    s = held[0]
    s.sendall(b"NOOP\r\n")
    check(s.recv(4096).startswith(b"250"), "a held session stopped working")
    for s in held:
        s.close()
    time.sleep(1.2)               # the accept pause is over
    subj = unique("after-emfile")
    send(srv, subj)
    srv.wait_delivery("demo@localhost", subj)
    check(children_named(srv, "tern-smtp") == [w], "the worker was replaced (crashed?)")
    srv.stop_checked()


def non_asan_build(build):
    """A binary whose address space can be limited: ASan's shadow memory needs terabytes."""
    def asan(path):
        try:
            with open(path, "rb") as f:
                return b"AddressSanitizer" in f.read()
        except OSError:
            return True
    for b in (build, os.path.join(REPO, "build")):
        if not asan(os.path.join(b, "tern")):
            return b
    return None


@g.test("soft-descriptor-limit-raised-to-hard")
def _(make):
    # A soft limit of 1024 open files is common, and one worker may hold max_connections
    # sockets: tern serve takes the hard limit for itself and its children.
    need_root()
    srv = make("nofile", workers=1, log_level="info")
    srv.wrapper = ["prlimit", "--nofile=64:4096"]  # tern itself: valgrind virtualises the limit
    srv.start()
    w = the_worker(srv)
    with open("/proc/%d/limits" % w) as f:
        line = [x for x in f if x.startswith("Max open files")][0].split()
    check(line[3:5] == ["4096", "4096"], "worker's open-file limits: %r, want 4096 4096" % line)
    check(re.search(r"limit of open files raised to 4096", srv.log_text()),
          "no log line for the raised limit\n%s" % srv.log_tail())
    subj = unique("nofile")
    send(srv, subj)
    srv.wait_delivery("demo@localhost", subj)
    srv.stop_checked()


@g.test("memory-limit-452-421-no-crash")
def _(make):
    need_root()
    srv = make("nomem", workers=1, max_connections_per_ip=1000, log_level="info")
    b = non_asan_build(srv.build)
    if not b:
        raise Skip("only an AddressSanitizer build is available (make BUILD=build)")
    srv.binary = os.path.join(b, "tern")
    # Under valgrind the worker's address space is valgrind's: an RLIMIT_AS just above it
    # measures valgrind, not tern. This test runs tern itself (make check-valgrind too).
    srv.wrapper = []
    srv.start()
    w = the_worker(srv)
    c = srv.connect()           # the worker is serving: its start-up allocations are done
    c.quit()
    with open("/proc/%d/status" % w) as f:
        vm = int(re.search(r"VmSize:\s+(\d+) kB", f.read()).group(1)) * 1024
    prlimit(srv, w, "--as=%d:%d" % (vm + 4 * MiB, vm + 4 * MiB))
    import socket
    sessions, answers = [], {}
    for i in range(400):
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            f = s.makefile("rb")
            greet = f.readline()
            if not greet.startswith(b"220"):
                answers[greet[:9]] = answers.get(greet[:9], 0) + 1
                f.close()
                s.close()
                continue
            s.sendall(b"EHLO mem.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<demo@localhost>\r\n"
                      b"DATA\r\n")
            last = b""
            while True:
                line = f.readline()
                if not line:
                    break
                last = line
                if line[3:4] == b" " and line[:3] in (b"354", b"452", b"451", b"421", b"550"):
                    if not line.startswith(b"250"):
                        break
            answers[last[:9]] = answers.get(last[:9], 0) + 1
            if last.startswith(b"354"):
                sessions.append((s, f))
            else:
                f.close()
                s.close()
        except OSError as e:
            answers[type(e).__name__] = answers.get(type(e).__name__, 0) + 1
        if len(answers) > 1 and sum(v for k, v in answers.items() if k != b"354 End d") >= 50:
            break
    refusals = {k: v for k, v in answers.items() if not k.startswith(b"354")}
    out("    answers with the address space limited: %r" % answers)
    check(refusals, "400 sessions fit in +4 MiB of address space? answers %r" % answers)
    for k in refusals:
        check(k in (b"452 4.3.1", b"421 4.3.2"),
              "under memory pressure the answer was %r, want 452 4.3.1 or 421 4.3.2 (all: %r)"
              % (k, answers))
    log = srv.log_text()
    check("exiting" not in log and "crashed" not in log and "exited unexpectedly" not in log,
          "the worker died of memory shortage\n%s" % srv.log_tail())
    # Free the memory: close most sessions, then finish one of the open messages. The file
    # object from makefile() holds the descriptor too: the connection ends only once both
    # are closed.
    keep = sessions[:1]
    for s, f in sessions[1:]:
        f.close()
        s.close()
    if keep:
        s, f = keep[0]
        s.sendall(b"Subject: finished after the shortage\r\n\r\nok\r\n.\r\n")
        check(f.readline().startswith(b"250"), "an open message failed after the shortage")
        f.close()
        s.close()
    # The worker frees the closed sessions' memory as it reads their EOFs: service is back
    # once it has (retried, not timed).
    subj = unique("after-nomem")

    def try_send():
        try:
            return send(srv, subj)
        except TestFailure:
            return None
    check(poll(try_send, 20, 0.5), "no message accepted after the memory came back\n%s" %
          srv.log_tail())
    srv.wait_delivery("demo@localhost", subj)

    # All of it is back, not just one message's worth: most of the closed sessions' number of
    # messages can be open at once again (a leaked or pinned queue writer would fail here).
    want = len(sessions) * 3 // 4

    def open_at_once():
        conns = []
        try:
            for _ in range(want):
                c = srv.connect()
                conns.append(c)
                c.ehlo()
                c.mail()
                c.rcpt()
                c.cmd("DATA", 354)
            return True
        except (TestFailure, OSError):
            return False
        finally:
            for c in conns:
                c.close()
    check(poll(open_at_once, 20, 0.5), "%d messages cannot be open at once after the memory "
          "came back (%d were before)\n%s" % (want, len(sessions), srv.log_tail()))
    check(children_named(srv, "tern-smtp") == [w], "the worker was replaced (crashed?)")
    srv.stop_checked()


if __name__ == "__main__":
    run_main()
