#!/usr/bin/python3
"""test_aliases.py - aliases (aliases(5) format), virtual aliases with a catch-all, the
relocated map, EXPN, and `tern newaliases`, against a running server (docs/aliases.md).

An alias to several local users is delivered to each Maildir; an alias to a remote address is
delivered to a real SMTP server (the testkit's smtp-capture, reached through a `transport`),
although the client itself may not relay there; :include: files, loop detection, the
catch-all, 551 for a relocated user, EXPN on and off, refused "|command" targets, and
newaliases on a good file (the server reloads) and on a bad one (file:line, nothing changes).

    /usr/bin/python3 tests/integration/test_aliases.py BUILD_DIR [name-filter...]
"""
import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from ternlib import (TESTKIT, Group, check, free_port, message, poll, run_main, unique)

WORK = tempfile.mkdtemp(prefix="tern-it-aliases.")
os.chmod(WORK, 0o755)
ALIASES = os.path.join(WORK, "aliases")
VIRTUAL = os.path.join(WORK, "virtual")
RELOCATED = os.path.join(WORK, "relocated")
STAFF = os.path.join(WORK, "staff.list")
CAPTURE = os.path.join(WORK, "capture")

ALIASES_TEXT = """\
# aliases(5) for the integration tests
postmaster: demo
staff: alice,
  bob
fwd: demo, friend@remote.test
team: :include:%s
loop1: loop2
loop2: loop1
cmd: demo, "|/bin/cat > /tmp/tern-pipe-must-not-run"
""" % STAFF


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


write(ALIASES, ALIASES_TEXT)
write(STAFF, "# the team\nalice\nbob, demo\n")
write(VIRTUAL, "info@virt.test alice@localhost\n@virt.test bob@localhost\n")
write(RELOCATED, "old@localhost new@elsewhere.test\n")

# The remote MX for remote.test: the testkit's capture server on a free loopback port.
PEER_PORT = free_port()
os.makedirs(CAPTURE)
peer = subprocess.Popen(["/usr/bin/python3", os.path.join(TESTKIT, "smtp-capture"),
                         "-l", "127.0.0.1:%d" % PEER_PORT, "-o", CAPTURE],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def cleanup():
    peer.send_signal(signal.SIGTERM)
    try:
        peer.wait(10)
    except subprocess.TimeoutExpired:
        peer.kill()
    shutil.rmtree(WORK, ignore_errors=True)


atexit.register(cleanup)
ready = peer.stdout.readline().decode()
if not ready.startswith("READY"):
    raise SystemExit("FAIL capture: smtp-capture did not start: %r" % ready)

COMMON = dict(aliases=ALIASES, virtual_aliases=VIRTUAL, relocated=RELOCATED,
              transport="remote.test 127.0.0.1:%d starttls=none" % PEER_PORT)
g = Group("aliases", mailboxes=["demo", "alice", "bob"], vrfy="on", **COMMON)


def send(srv, rcpts, subj, codes=None):
    c = srv.connect()
    c.ehlo()
    c.mail("sender@client.test")
    for r in rcpts:
        c.rcpt(r)
    qid = c.data(message(subj))
    c.quit()
    return qid


def refused(srv, rcpt, code, esc):
    c = srv.connect()
    c.ehlo()
    c.mail("sender@client.test")
    r = c.rcpt(rcpt, code, esc)
    c.quit()
    return r


@g.test("alias-to-several-local-users")
def _(srv):
    subj = unique("staff")
    send(srv, ["staff@localhost"], subj)
    for a in ("alice@localhost", "bob@localhost"):
        msg = srv.wait_delivery(a, subj)[0]
        check(b"Delivered-To: " + a.encode() in msg, "no Delivered-To: %s in %r" % (a, msg[:300]))
    check(not srv.find("demo@localhost", subj), "demo got a copy of the staff mail")


@g.test("alias-duplicates-delivered-once")
def _(srv):
    subj = unique("dup")
    send(srv, ["staff@localhost", "alice@localhost", "team@localhost"], subj)
    srv.wait_delivery("alice@localhost", subj, count=1)
    srv.wait_delivery("bob@localhost", subj, count=1)
    srv.wait_delivery("demo@localhost", subj, count=1)
    time.sleep(0.5)  # not a timing assertion: give a second copy a chance to show up
    check(len(srv.find("alice@localhost", subj)) == 1, "alice got more than one copy")


@g.test("alias-to-remote-address")
def _(srv):
    subj = unique("fwd")
    send(srv, ["fwd@localhost"], subj)
    srv.wait_delivery("demo@localhost", subj)

    def captured():
        for n in os.listdir(CAPTURE):
            if n.endswith(".json"):
                with open(os.path.join(CAPTURE, n[:-5] + ".eml"), "rb") as f:
                    if subj.encode() in f.read():
                        with open(os.path.join(CAPTURE, n)) as j:
                            return json.load(j)
        return None
    env = poll(captured, 30)
    check(env, "the remote target never reached the peer\n" + srv.log_tail())
    check(env["rcpt_tos"] == ["friend@remote.test"], "peer got rcpt_tos %r" % env["rcpt_tos"])
    check(env["mail_from"] == "sender@client.test", "peer got mail_from %r" % env["mail_from"])


@g.test("no-open-relay-through-aliases")
def _(srv):
    # The alias may forward to remote.test; the client may not send there itself.
    refused(srv, "friend@remote.test", 554, "5.7.1")


@g.test("include-file")
def _(srv):
    subj = unique("team")
    send(srv, ["team@localhost"], subj)
    for a in ("alice@localhost", "bob@localhost", "demo@localhost"):
        srv.wait_delivery(a, subj)


@g.test("loop-detected")
def _(srv):
    r = refused(srv, "loop1@localhost", 550, "5.4.6")
    check("loop1@localhost -> loop2@localhost -> loop1@localhost" in r.text, r.text)


@g.test("virtual-exact-and-catch-all")
def _(srv):
    subj = unique("virt")
    send(srv, ["info@virt.test", "whoever@virt.test"], subj)
    srv.wait_delivery("alice@localhost", subj)
    srv.wait_delivery("bob@localhost", subj)


@g.test("relocated-551")
def _(srv):
    r = refused(srv, "old@localhost", 551, "5.1.6")
    check("please try <new@elsewhere.test>" in r.text, r.text)


@g.test("pipe-target-refused")
def _(srv):
    r = refused(srv, "cmd@localhost", 550, "5.7.1")
    check("command" in r.text, r.text)
    check("alias refused to=<cmd@localhost>" in srv.log_text(), "refusal not logged")
    check(not os.path.exists("/tmp/tern-pipe-must-not-run"), "the command ran")


@g.test("unknown-still-550")
def _(srv):
    refused(srv, "nobody@localhost", 550, "5.1.1")


@g.test("expn-enabled")
def _(srv):
    c = srv.connect()
    c.ehlo()
    r = c.cmd("EXPN staff", 250, "2.1.5")
    check(r.lines == ["250-2.1.5 <alice@localhost>", "250 2.1.5 <bob@localhost>"], r.text)
    c.cmd("EXPN demo", 550, "5.1.1")
    c.cmd("EXPN old@localhost", 551, "5.1.6")
    c.quit()


def newaliases(srv, *args):
    return subprocess.run([srv.binary, "newaliases", "-c", srv.conf] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)


def rcpt_code(srv, addr):
    c = srv.connect()
    c.ehlo()
    c.mail("sender@client.test")
    r = c.cmd("RCPT TO:<%s>" % addr)
    c.quit()
    return r.code


@g.test("newaliases-good-file-reloads")
def _(srv):
    check(rcpt_code(srv, "newalias@localhost") == 550, "newalias accepted before it exists")
    write(ALIASES, ALIASES_TEXT + "newalias: bob\n")
    r = newaliases(srv)
    text = r.stdout.decode()
    check(r.returncode == 0, "newaliases exited %d: %s" % (r.returncode, text))
    check("is reloading" in text, "newaliases did not signal the server: %s" % text)
    check(poll(lambda: rcpt_code(srv, "newalias@localhost") == 250, 30),
          "newalias not accepted after newaliases\n" + srv.log_tail())
    subj = unique("new")
    send(srv, ["newalias@localhost"], subj)
    srv.wait_delivery("bob@localhost", subj)


@g.test("newaliases-bad-file-refused")
def _(srv):
    write(ALIASES, ALIASES_TEXT + "newalias: bob\nthis line has no colon\n")
    r = newaliases(srv)
    text = r.stdout.decode()
    check(r.returncode == 1, "newaliases exited %d on a bad file: %s" % (r.returncode, text))
    check("%s:11: missing ':' after the alias name" % ALIASES in text, text)
    # The running server keeps what it had.
    check(rcpt_code(srv, "newalias@localhost") == 250, "the server lost its aliases")
    write(ALIASES, ALIASES_TEXT + "newalias: bob\nnewloop: newloop2\nnewloop2: newloop\n")
    r = newaliases(srv, "--check")
    text = r.stdout.decode()
    check(r.returncode == 0 and "warning: newloop: newloop@localhost -> newloop2@localhost"
          in text, "loop not reported: %s" % text)
    write(ALIASES, ALIASES_TEXT + "newalias: bob\n")
    r = newaliases(srv, "--check")
    check(r.returncode == 0, "newaliases --check on a good file: %s" % r.stdout.decode())


off = Group("aliases-vrfy-off", mailboxes=["demo", "alice", "bob"], **COMMON)


@off.test("expn-disabled-252")
def _(srv):
    c = srv.connect()
    c.ehlo()
    c.cmd("EXPN staff", 252, "2.1.5")
    c.cmd("VRFY staff", 252, "2.1.5")
    c.quit()


@off.test("newaliases-without-server")
def _(srv):
    # Another configuration on an unused spool: validate only, nothing to signal.
    conf = os.path.join(WORK, "idle.conf")
    with open(srv.conf) as f, open(conf, "w") as o:
        o.write(f.read().replace("spool %s" % srv.spool, "spool %s/idle-spool" % WORK))
    # Called as "newaliases" (make install links it to tern), with no subcommand.
    link = os.path.join(WORK, "newaliases")
    os.symlink(os.path.abspath(srv.binary), link)
    r = subprocess.run([link, "-c", conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    text = r.stdout.decode()
    check(r.returncode == 0 and "no tern serve is running" in text, text)


# allow_pipe_aliases on: commands of the aliases file run as the mail user.
PIPEDIR = os.path.join(WORK, "pipe")
os.makedirs(PIPEDIR)
os.chmod(PIPEDIR, 0o777)  # the queue manager runs as the unprivileged test user
PIPE_ALIASES = os.path.join(WORK, "pipe-aliases")
PIPE_INC = os.path.join(WORK, "pipe.inc")
write(PIPE_ALIASES, """\
piped: alice, "|(env; cat) >> %s/piped.out"
failing: "|echo no such list here; exit 67"
later: "|echo try later; exit 75"
inccmd: :include:%s
""" % (PIPEDIR, PIPE_INC))
write(PIPE_INC, '"|cat > %s/from-include.out"\n' % PIPEDIR)
pipes = Group("aliases-pipe", mailboxes=["demo", "alice"], aliases=PIPE_ALIASES,
              allow_pipe_aliases="on", vrfy="on")


@pipes.test("pipe-delivers-to-command")
def _(srv):
    subj = unique("pipe")
    send(srv, ["piped@localhost"], subj)
    srv.wait_delivery("alice@localhost", subj)
    out = os.path.join(PIPEDIR, "piped.out")

    def piped():
        try:
            with open(out) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        return text if subj in text else None
    text = poll(piped, 30)
    check(text, "the command did not get the message\n" + srv.log_tail())
    for want in ("RECIPIENT=piped@localhost", "SENDER=sender@client.test",
                 "Delivered-To: piped@localhost", "Return-Path: <sender@client.test>",
                 "Subject: " + subj):
        check(want in text, "%r not in the command's input/environment:\n%s" % (want, text))
    check("\r\n" not in text, "the command got CRLF line ends")


@pipes.test("pipe-failure-bounces")
def _(srv):
    subj = unique("failing")
    c = srv.connect()
    c.ehlo()
    c.mail("demo@localhost")
    c.rcpt("failing@localhost")
    c.data(message(subj))
    c.quit()
    bounce = srv.wait_delivery("demo@localhost", subj)[0].decode("utf-8", "replace")
    check("exited with status 67" in bounce and "no such list here" in bounce,
          "bounce does not give the command's status and output:\n" + bounce[:3000])


@pipes.test("pipe-tempfail-retried")
def _(srv):
    subj = unique("later")
    qid = send(srv, ["later@localhost"], subj)
    check(poll(lambda: "command exited with status 75" in srv.log_text(), 30),
          "no deferral logged\n" + srv.log_tail())
    check(srv.queued(qid), "message %s left the queue after a temporary failure" % qid)


@pipes.test("pipe-from-include-refused")
def _(srv):
    r = refused(srv, "inccmd@localhost", 550, "5.7.1")
    check("command" in r.text, r.text)
    check(not os.path.exists(os.path.join(PIPEDIR, "from-include.out")), "included command ran")


@pipes.test("expn-hides-commands")
def _(srv):
    c = srv.connect()
    c.ehlo()
    r = c.cmd("EXPN piped", 250, "2.1.5")
    check(r.lines == ["250 2.1.5 <alice@localhost>"], r.text)
    r = c.cmd("EXPN failing", 250, "2.1.5")
    check("|" not in r.text and "delivered to a command" in r.text, r.text)
    c.quit()


@pipes.test("newaliases-with-commands")
def _(srv):
    r = newaliases(srv, "--check")
    text = r.stdout.decode()
    check(r.returncode == 0, "newaliases --check exited %d: %s" % (r.returncode, text))
    check("warning: inccmd: target |cat" in text and "aliases file itself" in text,
          "no warning for the command in the :include: file: %s" % text)
    check("warning: piped" not in text, "warned about an allowed command: %s" % text)


if __name__ == "__main__":
    run_main()
