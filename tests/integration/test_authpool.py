#!/usr/bin/python3
"""test_authpool.py - AUTH PLAIN/LOGIN password checks run off the worker's event loop
(src/authpool.c), against a real `tern serve` with ONE worker, so every client shares its loop.

A users-file entry with a deliberately expensive bcrypt hash ("$2b$15$", seconds per check)
stands for a brute-force client's check. While a guesser's check is outstanding, another
client on the same worker authenticates (on the pool's other thread) and runs 20 complete
transactions (and NOOPs): the proof is the order of the server's log lines and replies, not a
clock - the other client's "result=ok" and every one of its 20 "queued" lines must come after
the guess's "check=started" line and before its "result=failed" line, and the guesser must
have had no reply yet. With the check on the loop, the other client would not even get its
EHLO answered before the checks ended. Also: commands pipelined behind AUTH wait for its
result (a MAIL sent in the same packet as a good AUTH PLAIN on the submission port gets 250,
not 530), and a session that ends while its check runs (command timeout) neither crashes nor
leaks (the worker logs the dropped result; the group checks the sanitizer log at exit)."""

import base64
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile

from ternlib import Group, build_dir, check, message, poll, run_main, unique, SLOW

FAST_USER, FAST_PW = "alice@localhost", "correct horse battery"
SLOW_USER = "slow@localhost"
SLOWER_USER = "slower@localhost"   # cost 17: its check must outlast what a test does meanwhile
GUESSERS = 1        # one of the two check threads: the other one serves the legitimate AUTH
TRANSACTIONS = 20

WORK = tempfile.mkdtemp(prefix="tern-it-authpool.", dir=os.environ.get("TERN_IT_TMP") or None)
os.chmod(WORK, 0o755)
USERS = os.path.join(WORK, "users")
B64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_setup_error = None

try:
    r = subprocess.run([os.path.join(build_dir(), "tern"), "user", "-f", USERS, "add", FAST_USER,
                        "--password", FAST_PW, "--iterations", "4096"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("tern user add: %s%s" % (r.stdout, r.stderr))
    # A bcrypt hash at cost 15 (2^15 rounds): crypt(3) spends the full cost on any password
    # before comparing, so a made-up digest is as slow to check as a real one. The last salt
    # character must be one of ".Oeu" (bcrypt uses only its top two bits).
    salt = "".join(random.choice(B64) for _ in range(21)) + random.choice(".Oeu")
    digest = "".join(random.choice(B64) for _ in range(31))
    with open(USERS, "a") as f:
        f.write("%s:$2b$15$%s%s::\n" % (SLOW_USER, salt, digest))
        f.write("%s:$2b$17$%s%s::\n" % (SLOWER_USER, salt, digest))
    os.chmod(USERS, 0o600)
except Exception as e:  # noqa: BLE001 - reported by every test
    _setup_error = "setup failed: %s" % e


def need_setup():
    check(_setup_error is None, _setup_error or "")


def b64(s):
    return base64.b64encode(s.encode()).decode()


def plain(user, pw):
    return "AUTH PLAIN " + b64("\0%s\0%s" % (user, pw))


def no_reply_yet(c):
    """Nothing from the server is waiting on c's socket (its AUTH is not answered yet)."""
    c.sock.setblocking(False)
    try:
        c.sock.recv(1, socket.MSG_PEEK)
        return False
    except BlockingIOError:
        return True
    finally:
        c.sock.settimeout(15 * SLOW)


def started_lines(text, user=SLOW_USER):
    return [m.start() for m in re.finditer(r"auth client=\[[^]]*\] mech=PLAIN user=%s check=started"
                                           % re.escape(user), text)]


g = Group("authpool", mailboxes=["demo", "alice"], workers=1, users_file=USERS,
          auth_plaintext_loopback=True, auth_max_failures=0,
          listeners={"sub": "submission"})


@g.test("other-sessions-progress-while-checks-run")
def _(srv):
    need_setup()
    # the guess uses the cost-17 hash: its check must outlast 20 transactions of the other
    # client however slow they are (valgrind, a loaded machine)
    mark = srv.log_size()
    guessers = []
    for i in range(GUESSERS):
        c = srv.connect(port="sub")
        c.ehlo()
        # a NOOP pipelined behind the guess must not be answered before the guess is
        c.send(plain(SLOWER_USER, "guess %d" % i) + "\r\nNOOP\r\n")
        guessers.append(c)
    check(poll(lambda: len(started_lines(srv.log_text()[mark:], SLOWER_USER)) == GUESSERS, 30),
          "the guessers' checks were not started off the loop\n" + srv.log_tail(mark))

    tags = [unique("authpool-progress-%d" % i) for i in range(TRANSACTIONS)]
    b = srv.connect(port="sub")
    b.ehlo()
    b.cmd(plain(FAST_USER, FAST_PW), 235, "2.7.0", timeout=60)   # not stuck behind the guess
    qids = []
    for i in range(TRANSACTIONS):
        b.mail(FAST_USER)
        b.rcpt("demo@localhost")
        qids.append(b.data(message(tags[i])))
        b.cmd("NOOP", 250)
    b.quit()
    for i, c in enumerate(guessers):
        check(no_reply_yet(c), "guesser %d was answered before the other client's %d "
                               "transactions ended: its check ran too soon, or on the loop\n%s"
              % (i, TRANSACTIONS, c.dump()))

    # the log order: checks started < every transaction < any check result
    text = srv.log_text()[mark:]
    last_start = max(started_lines(text, SLOWER_USER))
    queued = [text.find("queued qid=%s " % q) for q in qids]
    check(all(p >= 0 for p in queued), "not every transaction was logged as queued")
    check(min(queued) > last_start, "a transaction was logged before the checks started")
    ok = text.find("user=%s result=ok" % FAST_USER)
    check(last_start < ok < min(queued), "the other client's AUTH was not logged in between")
    failed = text.find("user=%s result=failed" % SLOWER_USER)
    check(failed < 0 or failed > max(queued),
          "a guess's result was logged before the other client's transactions ended\n"
          + srv.log_tail())

    # the guesses fail in the end (after the failure delay), then the pipelined NOOP runs
    for c in guessers:
        c.expect(c.read(timeout=120 * SLOW), 535, "5.7.8")
        c.expect(c.read(), 250)
        c.quit()
    text = srv.log_text()[mark:]
    check(len(re.findall(r"user=%s result=failed failures=1 " % re.escape(SLOWER_USER), text))
          == GUESSERS, "not every guess was logged as failed\n" + srv.log_tail(mark))
    failed = text.find("user=%s result=failed" % SLOWER_USER)
    check(failed > max(text.find("queued qid=%s " % q) for q in qids),
          "a guess's result was logged before the other client's transactions ended")
    for tag in tags:
        srv.wait_delivery("demo@localhost", tag)


@g.test("pipelined-commands-wait-for-the-check")
def _(srv):
    need_setup()
    c = srv.connect(port="sub")
    c.ehlo()
    # one packet: on the submission port a MAIL read before the check's result would get 530
    c.send(plain(FAST_USER, FAST_PW) + "\r\nMAIL FROM:<%s>\r\nRCPT TO:<demo@localhost>\r\n"
           % FAST_USER)
    c.expect(c.read(), 235, "2.7.0")
    c.expect(c.read(), 250, "2.1.0")
    c.expect(c.read(), 250, "2.1.5")
    subj = unique("authpool-pipelined")
    c.data(message(subj))
    c.quit()
    srv.wait_delivery("demo@localhost", subj)
    # LOGIN goes the same way, and a wrong password still fails (with its delay)
    c = srv.connect(port="sub")
    c.ehlo()
    c.cmd("AUTH LOGIN " + b64(FAST_USER), 334)
    c.send(b64("wrong") + "\r\nNOOP\r\n")
    c.expect(c.read(timeout=60), 535, "5.7.8")
    c.expect(c.read(), 250)
    c.cmd("AUTH LOGIN " + b64(FAST_USER), 334)
    c.cmd(b64(FAST_PW), 235, "2.7.0", timeout=60)
    c.quit()
    # an unknown user is checked (against the dummy hash) and refused like a wrong password
    c = srv.connect(port="sub")
    c.ehlo()
    c.cmd(plain("nobody@localhost", FAST_PW), 535, "5.7.8", timeout=60)
    c.quit()
    check(re.search(r"mech=PLAIN user=nobody@localhost check=started", srv.log_text()),
          "the unknown user's password was not checked like a known one's")


g2 = Group("authpool-gone", server=False)


@g2.test("session-ends-during-check")
def _(make):
    need_setup()
    srv = make("gone", mailboxes=["demo", "alice"], workers=1, users_file=USERS,
               auth_plaintext_loopback=True, auth_max_failures=0,
               # far shorter than the cost-17 check (about 4x the cost-15 one), longer than a
               # normal one (valgrind: SLOW)
               timeout_command=int(1 * SLOW),
               listeners={"sub": "submission"})
    srv.start()
    c = srv.connect(port="sub")
    c.ehlo()
    c.send(plain(SLOWER_USER, "a guess") + "\r\n")
    # the command timeout ends the session while its check still runs: 421 and close
    c.expect(c.read(timeout=60), 421, "4.4.2")
    check(c.at_eof(), "connection still open after 421")
    c.close()
    dropped = "auth check: result dropped, its session has ended"
    check(poll(lambda: dropped in srv.log_text(), 120),
          "the check of the ended session was not dropped\n" + srv.log_tail())
    check("user=%s result=failed" % SLOWER_USER not in srv.log_text(),
          "a result was given to a session that had ended")
    # the worker lives on (no restart) and serves the next client
    c = srv.connect(port="sub")
    c.ehlo()
    c.cmd(plain(FAST_USER, FAST_PW), 235, "2.7.0", timeout=60)
    c.quit()
    check(not re.search(r"crashed|exited unexpectedly", srv.log_text()),
          "a worker died\n" + srv.log_tail())


if __name__ == "__main__":
    try:
        run_main()
    finally:
        if not os.environ.get("TERN_IT_KEEP"):
            shutil.rmtree(WORK, True)
