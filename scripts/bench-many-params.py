#!/usr/bin/env python3
"""Median time of one unauthenticated POST /token carrying 8,000 distinct parameters.

Starts the given `tessera` binary on SQLite in a temporary directory, sends the same body
REQUESTS times over one keep-alive connection (after WARMUP unmeasured ones) and prints the
median, the fastest and the slowest answer together with the status and error code seen.

    scripts/bench-many-params.py target/debug/tessera [params] [requests]
"""

import base64
import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time

WARMUP = 3


def base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    binary = sys.argv[1]
    params = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
    requests = int(sys.argv[3]) if len(sys.argv) > 3 else 31
    body = "&".join(f"{base36(i)}=1" for i in range(params)).encode()
    assert len(body) <= 64 * 1024, len(body)

    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = dict(
            os.environ,
            TESSERA_LISTEN=f"127.0.0.1:{port}",
            TESSERA_ISSUER=f"http://127.0.0.1:{port}",
            TESSERA_DATABASE_URL=f"sqlite://{data}/tessera.db",
            TESSERA_DATA_DIR=data,
            TESSERA_MASTER_KEY=base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
            TESSERA_LOG="error",
        )
        server = subprocess.Popen(
            [binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    probe.request("GET", "/readyz")
                    if probe.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    sys.exit("the server did not become ready")
                time.sleep(0.1)

            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            took, answers = [], set()
            for i in range(WARMUP + requests):
                started = time.perf_counter()
                conn.request("POST", "/token", body=body, headers=headers)
                resp = conn.getresponse()
                answer = resp.read()
                elapsed = time.perf_counter() - started
                if i >= WARMUP:
                    took.append(elapsed * 1000)
                    answers.add((resp.status, json.loads(answer).get("error")))
        finally:
            server.terminate()
            server.wait()

    print(
        f"{binary}: {params} params, {len(body)} bytes, {requests} requests: "
        f"median {statistics.median(took):.2f} ms, min {min(took):.2f} ms, "
        f"max {max(took):.2f} ms; answers {sorted(answers)}"
    )


if __name__ == "__main__":
    main()
