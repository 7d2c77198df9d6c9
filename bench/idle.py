#!/usr/bin/env python3
"""idle.py - open N SMTP connections, say EHLO on each, then hold them idle.

    python3 bench/idle.py HOST PORT N

Prints "ready OK FAILED" on stdout once every connection has its EHLO reply (or failed),
then keeps them open until stdin closes or says anything. A connection counts as failed when
the connect is refused or reset, or the greeting or EHLO reply is not 2xx. Non-blocking
sockets and one selector: the client's own cost stays small next to the server's. Raise
RLIMIT_NOFILE before running it (bench/run.sh does).
"""
import errno
import selectors
import socket
import sys
import time

# Connections in the connecting/handshake phase at once: a burst of 10,000 SYNs would only
# overflow the listen backlog and measure retransmission timers, not memory.
WINDOW = 500


class Conn:
    __slots__ = ("sock", "state", "buf")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connect"
        self.buf = b""


def reply_done(buf):
    """A complete (possibly multiline) reply: its last line is 'NNN ' + text + CRLF."""
    lines = buf.split(b"\r\n")
    if len(lines) < 2:
        return None
    for line in lines[:-1]:
        if len(line) >= 4 and line[3:4] == b" ":
            return line[:3]
    return None


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sel = selectors.DefaultSelector()
    ok = failed = started = 0
    active = 0
    held = []
    deadline = time.monotonic() + 120

    def start_one():
        nonlocal started, active, failed
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        started += 1
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            failed += 1
            s.close()
            return
        c = Conn(s)
        active += 1
        sel.register(s, selectors.EVENT_WRITE, c)

    while (ok + failed) < n and time.monotonic() < deadline:
        while started < n and active < WINDOW:
            start_one()
        for key, _ in sel.select(timeout=1.0):
            c = key.data
            s = c.sock
            if c.state == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    sel.unregister(s)
                    s.close()
                    active -= 1
                    failed += 1
                    continue
                c.state = "greeting"
                sel.modify(s, selectors.EVENT_READ, c)
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                active -= 1
                failed += 1
                continue
            c.buf += data
            code = reply_done(c.buf)
            if code is None:
                continue
            c.buf = b""
            if not code.startswith(b"2"):
                sel.unregister(s)
                s.close()
                active -= 1
                failed += 1
            elif c.state == "greeting":
                c.state = "ehlo"
                s.send(b"EHLO idle.bench\r\n")
            else:
                sel.unregister(s)
                active -= 1
                ok += 1
                held.append(s)
    failed += n - ok - failed
    print(f"ready {ok} {failed}", flush=True)
    sys.stdin.read(1)
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
