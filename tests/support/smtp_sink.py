#!/usr/bin/env python3
"""A real SMTP server for tests: accepts every message and writes it to a folder.

Usage: smtp_sink.py OUTDIR  -> prints "PORT <n>" on its first line, then serves on 127.0.0.1:<n>.
Each message is written to OUTDIR/<seq>.eml (headers and body as received), atomically.
Standard library only (asyncio), so it runs on any Python 3.
"""
import asyncio
import os
import sys

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
counter = 0


async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global counter

    def send(line: str) -> None:
        writer.write((line + "\r\n").encode())

    send("220 tessera-test-sink ESMTP")
    await writer.drain()
    recipients = []
    while True:
        raw = await reader.readline()
        if not raw:
            break
        command = raw.decode(errors="replace").strip()
        verb = command.split(" ", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            send("250-tessera-test-sink")
            send("250 8BITMIME")
        elif verb == "MAIL":
            recipients = []
            send("250 OK")
        elif verb == "RCPT":
            recipients.append(command.split(":", 1)[-1].strip().strip("<>"))
            send("250 OK")
        elif verb == "DATA":
            send("354 End data with <CR><LF>.<CR><LF>")
            await writer.drain()
            lines = []
            while True:
                line = await reader.readline()
                if not line or line in (b".\r\n", b".\n"):
                    break
                if line.startswith(b".."):
                    line = line[1:]
                lines.append(line)
            counter += 1
            path = os.path.join(OUT, f"{counter:05d}.eml")
            with open(path + ".tmp", "wb") as f:
                f.write(("X-Sink-Rcpt: " + ",".join(recipients) + "\r\n").encode())
                f.write(b"".join(lines))
            os.replace(path + ".tmp", path)
            send("250 OK queued")
        elif verb == "RSET":
            recipients = []
            send("250 OK")
        elif verb == "NOOP":
            send("250 OK")
        elif verb == "QUIT":
            send("221 Bye")
            await writer.drain()
            break
        else:
            send("502 Command not implemented")
        await writer.drain()
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(session, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
