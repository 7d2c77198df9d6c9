#!/usr/bin/env python3
"""latency.py - time from the end of DATA ("<CRLF>.<CRLF>" sent) to the server's reply.

    python3 bench/latency.py HOST PORT SESSIONS MESSAGES SIZE RCPT

SESSIONS concurrent connections send MESSAGES messages of SIZE octets of body in all, several
per connection (MAIL, RCPT, DATA, body, then the next MAIL), so the clock covers only what
the server does at the end of data: for every server measured here, making the message
durable. Prints "n=N fail=F median_ms=X p99_ms=Y". Runs on asyncio in one process; the load
generator is the same for every server.
"""
import asyncio
import statistics
import sys
import time


async def read_reply(reader):
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) >= 4 and line[3:4] != b"-":
            return line[:3]


async def session(host, port, count, body, rcpt, lat, fails):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await read_reply(reader)
        writer.write(b"EHLO latency.bench\r\n")
        await read_reply(reader)
        for _ in range(count):
            writer.write(b"MAIL FROM:<bench@latency.bench>\r\n")
            if await read_reply(reader) != b"250":
                fails.append(1)
                continue
            writer.write(b"RCPT TO:<" + rcpt + b">\r\n")
            if await read_reply(reader) != b"250":
                fails.append(1)
                writer.write(b"RSET\r\n")
                await read_reply(reader)
                continue
            writer.write(b"DATA\r\n")
            await read_reply(reader)
            writer.write(body)
            await writer.drain()
            t0 = time.perf_counter()
            writer.write(b".\r\n")
            code = await read_reply(reader)
            t1 = time.perf_counter()
            if code == b"250":
                lat.append(t1 - t0)
            else:
                fails.append(1)
        writer.write(b"QUIT\r\n")
        await writer.drain()
    finally:
        writer.close()


async def main():
    host, port = sys.argv[1], int(sys.argv[2])
    sessions, messages, size = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    rcpt = sys.argv[6].encode()
    line = b"x" * 76 + b"\r\n"
    body = b"Subject: latency\r\n\r\n" + line * max(1, size // len(line))
    lat, fails = [], []
    per = [messages // sessions + (1 if i < messages % sessions else 0) for i in range(sessions)]
    results = await asyncio.gather(*(session(host, port, c, body, rcpt, lat, fails) for c in per),
                                   return_exceptions=True)
    errors = sum(1 for r in results if isinstance(r, Exception))
    lat.sort()
    if lat:
        med = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    else:
        med = p99 = float("nan")
    print(f"n={len(lat)} fail={len(fails) + errors} median_ms={med:.3f} p99_ms={p99:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
