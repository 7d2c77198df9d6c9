#!/usr/bin/python3
"""test_crash.py - crash safety under load: kill -9 at random points, restart, count.

Concurrent smtplib senders (threads) send messages with unique tokens to one or two
mailboxes, noting which got "250 ... queued as QID". Meanwhile tern is killed with SIGKILL at
random moments: an SMTP worker (the supervisor restarts it), the queue manager (restarted
too), or the supervisor and every child at once (then the test restarts tern). Afterwards:

- every (token, recipient) whose message got a 250 is in that Maildir: nothing is lost;
- none is there twice unless a kill fell inside its at-least-once window: between its
  "queued" log line and its "removed qid=" line (the line is written after the delivery was
  recorded; docs/architecture.md, Crash safety). Messages whose removal was logged before
  a kill, or that no kill overlapped, must be there exactly once;
- a message that got no 250 is there at most once (it may have been committed just before
  the kill cut the reply: that is allowed by RFC 5321 6.1, the client retries).

    /usr/bin/python3 tests/integration/test_crash.py BUILD_DIR [name-filter...]
"""
import os
import random
import re
import signal
import smtplib
import socket
import threading
import time

from ternlib import Group, TestFailure, check, out, poll, run_main

g = Group("crash", server=False)

SENDERS = 6
PER_SENDER = 25
MAX_PER_SENDER = 250     # bounds the load if the kills take long (restart back-off):
                         # past PER_SENDER a sender paces itself, so about 22 s more
RCPTS = ["demo@localhost", "alice@localhost", "bob@localhost"]
TOKEN_RE = re.compile(rb"X-Crash-Token: (\S+)")


def children(pid):
    """Pids of pid's children (the workers and the queue manager of a supervisor)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def kids_named(srv, name):
    return [p for p in children(srv.proc.pid) if comm(p) == name]


class Load:
    """The senders and what they were told."""

    def __init__(self, srv, run):
        self.srv = srv
        self.run = run
        self.lock = threading.Lock()
        self.acked = {}      # token -> (qid, [rcpts])
        self.unacked = {}    # token -> [rcpts]
        self.errors = 0
        self.stop = threading.Event()   # set once the kills are done: finish the round
        self.threads = [threading.Thread(target=self.sender, args=(i,)) for i in range(SENDERS)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(300)

    def alive(self):
        return any(t.is_alive() for t in self.threads)

    def sender(self, n):
        rnd = random.Random(n * 7919 + hash(self.run))
        c = None
        i = -1
        while True:
            i += 1
            if (i >= PER_SENDER and self.stop.is_set()) or i >= MAX_PER_SENDER:
                break
            if i >= PER_SENDER:
                # Past the planned load the kills are still under way (restart back-off):
                # keep some load going, slowly, so the cap is not reached before they are.
                time.sleep(0.1)
            token = "%s-%d-%d" % (self.run, n, i)
            rcpts = rnd.sample(RCPTS, rnd.choice((1, 2)))
            body = ("From: crash@example.org\r\nSubject: crash %s\r\nX-Crash-Token: %s\r\n\r\n"
                    "%s\r\n" % (token, token, "line of text to give it some size\r\n" * 40))
            try:
                if c is None:
                    c = smtplib.SMTP("127.0.0.1", self.srv.port, timeout=30)
                    c.ehlo("crash.test")
                code, _ = c.mail("crash@example.org")
                if code != 250:
                    raise smtplib.SMTPException("MAIL %d" % code)
                for r in rcpts:
                    code, _ = c.rcpt(r)
                    if code != 250:
                        raise smtplib.SMTPException("RCPT %d" % code)
                code, resp = c.data(body.encode())
                m = re.search(rb"queued as ([0-9A-Z]+)", resp)
                if code == 250 and m:
                    with self.lock:
                        self.acked[token] = (m.group(1).decode(), rcpts)
                    continue
                raise smtplib.SMTPException("DATA %d" % code)
            except (OSError, smtplib.SMTPException):
                with self.lock:
                    self.unacked[token] = rcpts
                    self.errors += 1
                try:
                    if c:
                        c.close()
                except OSError:
                    pass
                c = None
                time.sleep(0.05)
        if c:
            try:
                c.quit()
            except (OSError, smtplib.SMTPException):
                pass


def delivered(srv):
    """(token, rcpt) -> number of copies in the Maildirs."""
    counts = {}
    for r in RCPTS:
        for path in srv.messages(r):
            try:
                with open(path, "rb") as f:
                    m = TOKEN_RE.search(f.read(65536))
            except FileNotFoundError:
                continue
            if m:
                key = (m.group(1).decode(), r)
                counts[key] = counts.get(key, 0) + 1
    return counts


def windows(log, kills):
    """For each qid, is some kill offset inside [queued line, removed line)?"""
    queued, removed = {}, {}
    pos = 0
    for line in log.splitlines(True):
        m = re.search(r"queued qid=([0-9A-Z]+)", line)
        if m:
            queued.setdefault(m.group(1), pos)
        m = re.search(r"removed qid=([0-9A-Z]+)", line)
        if m:
            removed.setdefault(m.group(1), pos)
        pos += len(line.encode("utf-8", "replace"))

    def exposed(qid):
        q = queued.get(qid, 0)
        r = removed.get(qid, 1 << 62)
        return any(q <= k < r for k in kills)
    return exposed, removed


def crash_run(make, kind, nkills):
    srv = make(kind, mailboxes=["demo", "alice", "bob"], workers=2, retry_min=1, retry_max=1,
               log_level="info")
    srv.start()
    run = "%s%d" % (kind, random.randrange(1 << 30))
    load = Load(srv, run)
    kills = []        # log offsets at the moment of each kill
    killed = set()
    load.start()
    rnd = random.Random()
    done = 0
    acked_before = 0  # each kill waits for mail acknowledged since the last one (valgrind is slow)
    while done < nkills and load.alive():
        time.sleep(rnd.uniform(0.05, 0.6))
        poll(lambda: len(load.acked) > acked_before, 60)
        if kind == "worker":
            pids = kids_named(srv, "tern-smtp")
        elif kind == "qmgr":
            pids = kids_named(srv, "tern-qmgr")
        else:
            pids = children(srv.proc.pid) + [srv.proc.pid]
        pids = [p for p in pids if p not in killed]    # not the one dying right now
        if not pids:
            continue              # being restarted right now
        if kind != "group":
            pids = [rnd.choice(pids)]
        kills.append(srv.log_size())
        killed.update(pids)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        done += 1
        acked_before = len(load.acked)
        if kind == "group":
            srv.proc.wait(30)
            for p in pids:        # the children must be gone before a new supervisor starts
                poll(lambda: not os.path.exists("/proc/%d" % p) or comm(p) == "", 10)
            srv.proc = None
            srv.logf.close()
            srv.logf = None
            srv.start()
    time.sleep(0.5)                # some load after the last kill (and restart) too
    load.stop.set()
    load.join()
    check(not load.alive(), "senders did not finish")
    check(done == nkills, "only %d of %d kills happened (load too short?)" % (done, nkills))
    check(len(load.acked) > 0, "no message was acknowledged at all\n%s" % srv.log_tail())

    # Every acknowledged message must arrive; then the queue must empty.
    want = {(t, r) for t, (_, rs) in load.acked.items() for r in rs}

    def all_there():
        have = delivered(srv)
        return all(have.get(k, 0) >= 1 for k in want) and have
    have = poll(all_there, 90, 0.5)
    if not have:
        have = delivered(srv)
        lost = sorted(k for k in want if have.get(k, 0) == 0)
        raise TestFailure("%d of %d acknowledged deliveries lost, e.g. %r (qid %s)\n%s" % (
            len(lost), len(want), lost[:5], load.acked[lost[0][0]][0], srv.log_tail()))
    check(poll(lambda: not [f for f in srv.queue_files() if f.startswith("queue/")], 60, 0.5),
          "spool not empty after delivery: %r" % srv.queue_files()[:10])
    time.sleep(1)
    have = delivered(srv)
    exposed, removed = windows(srv.log_text(), kills)
    dups_allowed, dups_bad = [], []
    for (t, r), n in have.items():
        if n <= 1:
            continue
        if t in load.acked:
            qid = load.acked[t][0]
            (dups_allowed if exposed(qid) else dups_bad).append((t, r, qid, n))
        else:
            dups_bad.append((t, r, "?", n))
    check(not dups_bad, "delivered more than once although no kill fell between queueing and "
          "recording the delivery: %r\n%s" % (dups_bad[:5], srv.log_tail()))
    if kind == "worker":
        check(not dups_allowed, "a worker kill caused duplicates: %r" % dups_allowed[:5])
    strays = [k for k in have if k[0] not in load.acked and k[0] not in load.unacked]
    check(not strays, "unknown messages delivered: %r" % strays[:5])
    unacked_delivered = sum(1 for k in have if k[0] in load.unacked)
    out("    %s: %d kills, %d acknowledged messages (%d deliveries) all delivered, "
        "%d failed sends (%d of their deliveries arrived anyway), %d duplicates inside the "
        "at-least-once window" % (kind, done, len(load.acked), len(want), len(load.unacked),
                                  unacked_delivered, len(dups_allowed)))
    srv.stop_checked()


@g.test("kill-9-worker-under-load")
def _(make):
    crash_run(make, "worker", 4)


@g.test("kill-9-qmgr-under-load")
def _(make):
    crash_run(make, "qmgr", 3)


@g.test("kill-9-process-group-under-load")
def _(make):
    crash_run(make, "group", 3)


if __name__ == "__main__":
    run_main()
