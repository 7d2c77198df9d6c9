#!/usr/bin/env python3
"""bench.py - tern against Postfix and OpenSMTPD on loopback, side by side (docs/performance.md).

    python3 bench/bench.py TERN-BINARY [--quick] [--only tern,postfix,opensmtpd] [--out FILE]

Run it inside a private network namespace with a high RLIMIT_NOFILE: bench/run.sh does both
(`make bench`). Every server gets a fresh spool under build/bench/ for every measurement, the
same durable setting (250 only after the queue file is fsync'd), the same clients
(smtp-source, smtp-sink, bench/latency.py, bench/idle.py), and is stopped before the next
starts, so they never compete for the two cores. Figures:

  (1) acceptance: smtp-source, 20 and 100 sessions, 1 KiB and 64 KiB bodies, into a held
      queue (the delivery process is stopped with SIGSTOP), messages/s;
  (2) end to end: smtp-source -> server -> smtp-sink, 20 sessions of 1 KiB, messages/s until
      the sink has counted them all;
  (3) memory: total RSS (and PSS) of all server processes with 1, 1,000 and 10,000 idle
      connections after EHLO;
  (4) latency: median and 99th percentile from end of data to the reply, 20 sessions.

Each figure is the median of 3 runs (1 with --quick, which also uses smaller counts).
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TESTKIT = os.environ.get("TERN_TESTKIT", os.path.join(REPO, "..", "shared", "testkit"))
OPENSMTPD = os.environ.get("TERN_BENCH_OPENSMTPD", "/opt/tern-bench/opensmtpd/usr/sbin/smtpd")
HOST = "127.0.0.1"
SINK_PORT = 2600
RCPT = "user@relay.test"
SENDER = "bench@source.test"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def wait_listen(port, timeout=30):
    r = subprocess.run([os.path.join(TESTKIT, "wait-listen"), "-t", str(timeout), HOST,
                        str(port)])
    if r.returncode != 0:
        raise RuntimeError(f"nothing listens on {HOST}:{port}")


def listeners(port):
    """How many sockets listen on HOST:port (ss, so no probe connection)."""
    out = subprocess.run(["ss", "-Hntl", f"sport = :{port}"], capture_output=True,
                         text=True).stdout
    return sum(1 for l in out.splitlines() if l.split()[3:4] == [f"{HOST}:{port}"])


def wait_port_free(port, timeout=20):
    deadline = time.monotonic() + timeout
    while listeners(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"something still listens on {HOST}:{port}")
        time.sleep(0.05)


def alive(pid):
    """pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def proc_children():
    """pid -> list of child pids, from /proc."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def descendants(pid):
    kids = proc_children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def memory_kib(pids):
    """Total RSS and PSS in KiB of pids (PSS shares common pages fairly between processes)."""
    rss = pss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


# ---- the servers -------------------------------------------------------------------------


class Server:
    name = "?"
    port = 0
    serial = 0

    def __init__(self, root):
        self.root = root
        self.proc = None
        self.dir = None

    def fresh_dir(self):
        # A new directory every time, deleted only at the end: ext4 allocates a new file's
        # inode near its directory and skips recently deleted inodes one by one, so creating
        # files where thousands were just removed would slow down whoever runs next.
        Server.serial += 1
        self.dir = os.path.join(self.root, f"{self.name}.{Server.serial}")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        return self.dir

    def pids(self):
        return descendants(self.proc.pid) if self.proc else []

    def delivery_pids(self):
        """The processes that take messages out of the queue (stopped for a held queue)."""
        raise NotImplementedError

    def hold(self):
        pids = self.delivery_pids()
        if not pids:
            raise RuntimeError(f"{self.name}: no delivery process found to hold the queue")
        for p in pids:
            os.kill(p, signal.SIGSTOP)

    def check_port_free(self):
        # A server of a previous run still listening would take part of this run's clients
        # into its own queue (what happened to Postfix: docs/performance.md).
        if listeners(self.port):
            raise RuntimeError(f"{self.name}: port {self.port} is still taken by a previous run")

    def shutdown(self):
        """Ask the server to stop (its own way); stop() then waits and kills what is left."""
        self.proc.send_signal(signal.SIGTERM)

    def stop(self):
        if not self.proc:
            return
        # Every process of the tree, taken before anything exits: a child whose parent died
        # is reparented out of the tree and would be missed (Postfix's master outlives the
        # postfix-script it was started from).
        tree = self.pids()
        for p in tree:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.shutdown()
        deadline = time.monotonic() + 20
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        while any(alive(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in tree:
            if alive(p):
                log(f"    {self.name}: pid {p} ({comm(p)}) outlived the stop: killed")
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc.wait()
        self.proc = None
        wait_port_free(self.port)


class Tern(Server):
    name = "tern"
    port = 2525

    def __init__(self, root, binary):
        super().__init__(root)
        self.binary = os.path.abspath(binary)

    def start(self, relay):
        self.check_port_free()
        d = self.fresh_dir()
        for sub in ("spool", "mail"):
            os.makedirs(os.path.join(d, sub))
            shutil.chown(os.path.join(d, sub), "tern", "tern")
        conf = os.path.join(d, "tern.conf")
        with open(conf, "w") as f:
            f.write(f"""hostname bench.tern.test
listen {HOST}:{self.port} smtp
local_domain tern.test
mailbox user@tern.test
spool {d}/spool
maildir {d}/mail/%d/%u
workers 0
max_connections 20000
max_connections_per_ip 20000
relay_networks 127.0.0.0/8
transport relay.test {HOST}:{SINK_PORT}
outbound_tls none
outbound_concurrency 20
log stderr
""")
        self.log = open(os.path.join(d, "tern.log"), "w")
        self.proc = subprocess.Popen([self.binary, "serve", "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=d)
        wait_listen(self.port)

    def delivery_pids(self):
        pids = [p for p in self.pids() if comm(p) == "tern-qmgr"]
        if not pids:  # a tern without process names: the supervisor logs the pid
            self.log.flush()
            with open(self.log.name) as f:
                m = re.findall(r"queue manager started pid=(\d+)", f.read())
            pids = [int(m[-1])] if m else []
        return pids


class Postfix(Server):
    name = "postfix"
    port = 2527

    def start(self, relay):
        self.check_port_free()
        d = self.fresh_dir()
        cfg = os.path.join(d, "etc")
        os.makedirs(cfg)
        for sub in ("queue", "data"):
            os.makedirs(os.path.join(d, sub))
        shutil.chown(os.path.join(d, "data"), "postfix", "postfix")
        with open(os.path.join(cfg, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
myhostname = bench.postfix.test
mydomain = postfix.test
myorigin = $myhostname
mydestination =
inet_interfaces = {HOST}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [{HOST}]:{SINK_PORT}
alias_maps =
alias_database =
local_recipient_maps =
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
default_process_limit = 1200
in_flow_delay = 0
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
default_destination_concurrency_limit = 20
smtputf8_enable = no
""")
        # Debian's master.cf, with the smtpd listener on our port and no chroot (the
        # queue directory is private and has no chroot files).
        out = []
        with open("/etc/postfix/master.cf") as f:
            for line in f:
                fields = line.split()
                if line[:1] not in ("#", " ", "\t") and len(fields) >= 8:
                    if fields[0] == "qmgr" and not relay:
                        continue  # a held queue: nobody takes mail out of incoming/
                    if fields[0] == "smtp" and fields[1] == "inet":
                        fields[0] = f"{HOST}:{self.port}"
                    fields[4] = "n"
                    line = " ".join(fields) + "\n"
                out.append(line)
        with open(os.path.join(cfg, "master.cf"), "w") as f:
            f.writelines(out)
        sh(["postfix", "-c", cfg, "post-install", "create-missing"],
           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.log = open(os.path.join(d, "postfix.log"), "w")
        self.proc = subprocess.Popen(["postfix", "-c", cfg, "start-fg"], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=d)
        wait_listen(self.port)

    def hold(self):
        pass  # started without its qmgr (SIGSTOP on it did not hold: it ran again)

    def shutdown(self):
        # SIGTERM to `postfix start-fg` ends only the postfix-script shell: its master (not
        # exec'd) lives on. `postfix stop` signals the master, which ends its children.
        subprocess.run(["postfix", "-c", os.path.join(self.dir, "etc"), "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        super().shutdown()


class OpenSMTPD(Server):
    name = "opensmtpd"
    port = 2528

    def start(self, relay):
        self.check_port_free()
        d = self.fresh_dir()
        for sub in ("spool", "run"):
            os.makedirs(os.path.join(d, sub))
        os.chmod(os.path.join(d, "spool"), 0o711)
        # Compiled-in paths: private directories over them, in this namespace only.
        sh(["mount", "--bind", os.path.join(d, "spool"), "/var/spool/smtpd"])
        sh(["mount", "--bind", os.path.join(d, "run"), "/run"])
        self.mounted = True
        conf = os.path.join(d, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(f"""listen on {HOST} port {self.port}
action "relay" relay host smtp://{HOST}:{SINK_PORT}
match from local for any action "relay"
""")
        os.chmod(conf, 0o644)
        self.log = open(os.path.join(d, "smtpd.log"), "w")
        self.proc = subprocess.Popen([OPENSMTPD, "-d", "-f", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=d)
        wait_listen(self.port)

    def hold(self):
        # Stopping its scheduler would stall reception too (the queue process waits for
        # it), so OpenSMTPD's own switch holds the queue: relaying paused.
        sh([os.path.join(os.path.dirname(OPENSMTPD), "smtpctl"), "pause", "mta"],
           stdout=subprocess.DEVNULL)

    mounted = False

    def stop(self):
        super().stop()
        if self.mounted:
            for mnt in ("/run", "/var/spool/smtpd"):
                subprocess.run(["umount", mnt], check=False)
            self.mounted = False


# ---- the measurements --------------------------------------------------------------------


class Sink:
    """smtp-sink on SINK_PORT; count() is its running count of messages received."""

    def __init__(self):
        self.proc = subprocess.Popen(["smtp-sink", "-c", "-u", "nobody", f"{HOST}:{SINK_PORT}",
                                      "2048"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.last = 0
        wait_listen(SINK_PORT)

    def count(self):
        try:
            data = self.proc.stdout.read()
        except BlockingIOError:
            data = None
        if data:
            self.buf = (self.buf + data)[-4096:]
            tail = self.buf.rsplit(b"mesg=", 1)
            if len(tail) == 2:
                digits = tail[1].split(b"\r")[0].strip()
                if digits.isdigit():
                    self.last = int(digits)
        return self.last

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


# Longest a throughput run may take (seconds); a server slower than that is measured on what
# it got through by then (OpenSMTPD stalls: see docs/performance.md).
RUN_LIMIT = 90


def smtp_source(port, sessions, messages, size):
    """Run smtp-source (one message per connection, as clients do) for at most RUN_LIMIT
    seconds; returns (seconds, errors, capped), capped when it was stopped at the limit."""
    t0 = time.monotonic()
    p = subprocess.Popen(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l",
                          str(size), "-f", SENDER, "-t", RCPT, f"{HOST}:{port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=RUN_LIMIT)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        log(f"    smtp-source stopped after {RUN_LIMIT} s")
    dt = time.monotonic() - t0
    capped = dt >= RUN_LIMIT
    errors = [l for l in err.splitlines() if l.strip()]
    if not capped and (p.returncode != 0 or errors):
        log(f"    smtp-source: exit {p.returncode}: {' | '.join(errors[:3])}")
    return dt, len(errors) + (1 if p.returncode and not capped else 0), capped


def queued_count(server):
    """Messages durably in the server's queue: called after the server stopped, so nothing is
    still being written; counts only what each server considers committed."""
    if server.name == "tern":
        # queue/<qid> appears only after the file's fsync (tmp/ holds receptions in progress).
        return len(os.listdir(os.path.join(server.dir, "spool", "queue")))
    if server.name == "postfix":
        # cleanup creates incoming/<id> without the owner-execute bit and sets it (fchmod)
        # once the file is complete, just before the fsync and the 250; a file without it
        # is a reception in progress or abandoned (Postfix's own rule: mail_queue.h).
        n = 0
        for sub in ("incoming", "active", "deferred", "hold"):
            for top, _, files in os.walk(os.path.join(server.dir, "queue", sub)):
                n += sum(1 for f in files if os.stat(os.path.join(top, f)).st_mode & 0o100)
        return n
    # OpenSMTPD: a message moves from incoming/ to queue/ when it is committed.
    n = 0
    for _, _, files in os.walk(os.path.join(server.dir, "spool", "queue")):
        n += sum(1 for f in files if f == "message")
    return n


# ext4 without a journal (this machine's) skips, inode by inode, every inode freed in about the
# last 30 s when it allocates one (recently_deleted(), reading the inode table for each): a
# server measured right after many files were deleted spent a third of its time there
# (perf, docs/performance.md). So nothing is deleted before a measurement (old runs are
# removed at the end), and after a run that deleted messages (end to end: each server
# removes what it relayed) the next one waits SETTLE seconds, whichever server it is.
SETTLE = 60
last_deletion = None


def settle():
    if last_deletion is not None:
        wait = SETTLE - (time.monotonic() - last_deletion)
        if wait > 0:
            log(f"    waiting {wait:.0f} s for recently deleted inodes to age")
            time.sleep(wait)
    # And nobody else's dirty data in the page cache: a syncfs (tern) or a journal commit
    # would write it out on the measured server's time (the first run after `make` building
    # tern was 20 % slower than the next ones).
    os.sync()


def acceptance(server, sessions, messages, size):
    settle()
    server.start(relay=False)  # relay=False: started without a delivery agent where needed
    try:
        server.hold()
        dt, errors, capped = smtp_source(server.port, sessions, messages, size)
    finally:
        server.stop()
    queued = queued_count(server)
    if queued > messages:
        raise RuntimeError(f"{server.name}: {queued} messages in the queue, more than the "
                           f"{messages} sent: another server's clients got in")
    if capped or errors:
        # A server slower than RUN_LIMIT, or refusing some: measured on what it committed.
        log(f"    {server.name}: ONLY {queued} of {messages} messages queued "
            f"({'stopped at the time limit' if capped else f'{errors} client errors'})")
    elif queued != messages:
        # smtp-source finished without an error, so every message got its 250: a count that
        # differs means the measurement is wrong (messages went elsewhere, or were lost).
        raise RuntimeError(f"{server.name}: {queued} messages in the queue, but smtp-source "
                           f"sent {messages} without an error")
    # What is really in the queue counts, not what the client meant to send.
    return {"rate": queued / dt, "errors": errors, "queued": queued, "capped": int(capped)}


def end_to_end(server, sessions, messages, size):
    global last_deletion
    settle()
    sink = Sink()
    try:
        server.start(relay=True)
        t0 = time.monotonic()
        src = subprocess.Popen(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l",
                                str(size), "-f", SENDER, "-t", RCPT, f"{HOST}:{server.port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = t0 + RUN_LIMIT
        got = 0
        while time.monotonic() < deadline:
            got = sink.count()
            if got >= messages:
                break
            time.sleep(0.02)
        dt = time.monotonic() - t0
        if src.poll() is None:
            src.kill()
        _, err = src.communicate()
        errors = [l for l in err.splitlines() if l.strip()]
        if errors:
            log(f"    smtp-source: {' | '.join(errors[:3])}")
    finally:
        server.stop()
        sink.stop()
        last_deletion = time.monotonic()
    if got < messages:
        log(f"    {server.name}: the sink got only {got} of {messages} messages")
    return {"rate": got / dt, "errors": len(errors), "delivered": got}


def idle_memory(server, conns):
    server.start(relay=True)  # every process of a normal configuration
    try:
        time.sleep(0.5)
        client = subprocess.Popen([sys.executable, os.path.join(HERE, "idle.py"), HOST,
                                   str(server.port), str(conns)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = client.stdout.readline().split()
        ok, failed = (int(line[1]), int(line[2])) if len(line) == 3 else (0, conns)
        time.sleep(1.0)
        rss, pss = memory_kib(server.pids())
        client.stdin.close()
        client.wait()
    finally:
        server.stop()
    if failed:
        log(f"    {server.name}: {failed} of {conns} idle connections failed")
    return {"rss_mib": rss / 1024, "pss_mib": pss / 1024, "ok": ok, "failed": failed}


def latency(server, sessions, messages, size):
    settle()
    server.start(relay=False)
    try:
        server.hold()
        r = subprocess.run([sys.executable, os.path.join(HERE, "latency.py"), HOST,
                            str(server.port), str(sessions), str(messages), str(size), RCPT],
                           capture_output=True, text=True, check=True, timeout=2 * RUN_LIMIT)
    finally:
        server.stop()
    vals = dict(kv.split("=") for kv in r.stdout.split())
    return {"median_ms": float(vals["median_ms"]), "p99_ms": float(vals["p99_ms"]),
            "errors": int(vals["fail"])}


def median_of(runs, fn, *args):
    results = [fn(*args) for _ in range(runs)]
    out = {}
    for k in results[0]:
        out[k] = statistics.median(r[k] for r in results)
    out["runs"] = [r for r in results]
    return out


# ---- the table ---------------------------------------------------------------------------


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    fs = subprocess.run(["df", "-T", REPO], capture_output=True, text=True).stdout.splitlines()
    fstype = fs[-1].split()[1] if len(fs) > 1 else "?"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPU ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}, "
            f"spool on {fstype}")


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "ms":
        return f"{v:.2f}"
    if unit == "MiB":
        return f"{v:.1f}"
    return f"{v:.0f}"


def print_table(rows, servers):
    peers = [s for s in servers if s != "tern"]
    head = ["figure", "unit", "tern"]
    for p in peers:
        head += [p, f"tern/{p}"]
    lines = [head]
    for label, unit, vals in rows:
        line = [label, unit, fmt(vals.get("tern"), unit)]
        for p in peers:
            line.append(fmt(vals.get(p), unit))
            t, v = vals.get("tern"), vals.get(p)
            line.append(f"{t / v:.2f}" if t is not None and v else "n/a")
        lines.append(line)
    widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
    out = []
    for i, l in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(widths[j]) for j, c in enumerate(l)) + " |")
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tern")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="tern,postfix,opensmtpd")
    ap.add_argument("--figures", default="",
                    help="only figures whose name contains this (several: comma-separated)")
    ap.add_argument("--out", default=os.path.join(REPO, "build", "bench", "results.json"))
    a = ap.parse_args()

    runs = 1 if a.quick else 3
    msgs = 1000 if a.quick else 10000
    idle_counts = [1, 100, 1000] if a.quick else [1, 1000, 10000]
    lat_msgs = 400 if a.quick else 4000
    root = os.path.join(REPO, "build", "bench", "run")
    old = root + ".old"  # a previous run's spools: removed at the end, not before measuring
    if os.path.exists(root):
        if os.path.exists(old):
            shutil.rmtree(old)
            global last_deletion
            last_deletion = time.monotonic()
        os.rename(root, old)
    os.makedirs(root)
    os.chmod(root, 0o755)
    for p in (os.path.join(REPO, "build", "bench"), os.path.join(REPO, "build")):
        os.chmod(p, 0o755)  # the servers' unprivileged users reach their directories

    wanted = a.only.split(",")
    servers = []
    if "tern" in wanted:
        servers.append(Tern(root, a.tern))
    if "postfix" in wanted:
        if shutil.which("postfix") and shutil.which("smtp-source"):
            servers.append(Postfix(root))
        else:
            log("postfix is not installed: skipped (sh scripts/install-deps.sh bench)")
    if "opensmtpd" in wanted:
        if os.access(OPENSMTPD, os.X_OK) and os.path.isdir("/var/spool/smtpd"):
            servers.append(OpenSMTPD(root))
        else:
            log(f"opensmtpd not found at {OPENSMTPD}: skipped (sh scripts/install-deps.sh bench)")
    if not shutil.which("smtp-source"):
        sys.exit("bench: smtp-source is missing (postfix package)")

    results = {"machine": machine(), "quick": a.quick, "runs": runs, "servers": {}}
    rows = []

    def save():
        # After every figure, so a run cut short (or a figure that hangs) keeps what it got.
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)

    def chosen(label):
        return any(f in label for f in a.figures.split(","))

    def add(label, unit, key, fn, *args, only=None):
        vals = {}
        if not chosen(label):
            return
        for s in servers:
            if only and s.name not in only:
                vals[s.name] = None
                continue
            log(f"  {s.name}: {label}")
            try:
                r = median_of(runs, fn, s, *args)
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
                log(f"    {s.name}: {label} failed: {e} (logs in {s.dir})")
                s.stop()
                vals[s.name] = None
                continue
            results["servers"].setdefault(s.name, {})[label] = r
            vals[s.name] = r[key]
            log(f"    -> {fmt(r[key], unit)} {unit}")
        rows.append((label, unit, vals))
        save()

    log(f"bench: {results['machine']}; {runs} run(s) per figure")
    for size, sname in ((1024, "1 KiB"), (65536, "64 KiB")):
        for sess in (20, 100):
            add(f"accept {sess} sessions {sname}", "msg/s", "rate", acceptance, sess, msgs, size)
    add("end to end 20 sessions 1 KiB", "msg/s", "rate", end_to_end, 20, msgs, 1024)
    for n in idle_counts:
        # Postfix runs one smtpd process per connection: 10,000 of them would take this shared
        # machine's memory, so its figure is left out (n/a) above its process limit.
        only = [s.name for s in servers if s.name != "postfix" or n <= 1000]
        add(f"RSS {n} idle conns", "MiB", "rss_mib", idle_memory, n, only=only)
        if chosen(f"RSS {n} idle conns"):
            rows.append((f"PSS {n} idle conns", "MiB",
                     {s.name: results["servers"].get(s.name, {}).get(f"RSS {n} idle conns",
                                                                      {}).get("pss_mib")
                      for s in servers}))
    add("latency median 20 sessions", "ms", "median_ms", latency, 20, lat_msgs, 1024)
    if chosen("latency median 20 sessions"):
        rows.append(("latency p99 20 sessions", "ms",
                 {s.name: results["servers"].get(s.name, {}).get("latency median 20 sessions",
                                                                  {}).get("p99_ms")
                  for s in servers}))

    print(f"\nmachine: {results['machine']}")
    print(f"each figure: median of {runs} run(s); {msgs} messages per throughput run\n")
    print_table(rows, [s.name for s in servers])
    save()
    print(f"\nraw results: {a.out}")
    if os.path.exists(old):
        shutil.rmtree(old)


if __name__ == "__main__":
    main()
