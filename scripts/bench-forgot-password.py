#!/usr/bin/env python3
"""Median response time of POST /password/forgot for an existing vs an unknown account.
Usage: bench-forgot-password.py BIN [N] [DATABASE_URL]  (starts its own `tessera serve`)."""
import http.client, os, re, secrets, base64, socket, statistics, subprocess, sys, tempfile, time, urllib.parse

bin_, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50
d = tempfile.mkdtemp(prefix="forgot-timing-")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ,
    TESSERA_LISTEN=f"127.0.0.1:{port}", TESSERA_ISSUER=f"http://127.0.0.1:{port}",
    TESSERA_DATABASE_URL=sys.argv[3] if len(sys.argv) > 3 else f"sqlite://{d}/tessera.db",
    TESSERA_DATA_DIR=d, TESSERA_LOG="error",
    TESSERA_MASTER_KEY=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),
    TESSERA_ACCOUNT_MAIL_RATE_LIMIT="1000000", TESSERA_MAIL_TO_LOG="true")
subprocess.run([bin_, "user", "add", "--email", "known@example.test", "--password-stdin"],
               input=b"correct horse battery staple 42", env=env, check=True, capture_output=True)
log = open(f"{d}/server.log", "w")
srv = subprocess.Popen([bin_, "serve"], env=env, stdout=log, stderr=log)
try:
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port); c.request("GET", "/readyz")
            if c.getresponse().status == 200: break
        except OSError: pass
        time.sleep(0.1)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/password/forgot"); r = conn.getresponse(); html = r.read().decode()
    cookie = "; ".join(h.split(";")[0] for k, h in r.getheaders() if k.lower() == "set-cookie")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    def post(email):
        body = urllib.parse.urlencode({"csrf_token": csrf, "email": email})
        t = time.perf_counter()
        conn.request("POST", "/password/forgot", body, {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse(); resp.read()
        took = (time.perf_counter() - t) * 1000
        assert resp.status == 200, resp.status
        return took
    for _ in range(5): post("known@example.test"); post("warmup@example.test")
    known, unknown = [], []
    for i in range(n):
        # Alternate which goes first, so neither always follows the other's background work.
        pair = [("k", "known@example.test"), ("u", f"nobody{i}@example.test")]
        for kind, email in (pair if i % 2 else pair[::-1]):
            (known if kind == "k" else unknown).append(post(email))
        time.sleep(0.02)
    print(f"n={n} each; median existing = {statistics.median(known):.2f} ms, "
          f"median unknown = {statistics.median(unknown):.2f} ms, "
          f"difference = {statistics.median(known) - statistics.median(unknown):+.2f} ms")
finally:
    srv.terminate(); srv.wait()
