// How many requests per second one core of erp-api verifies: an in-process loop over the
// verifier, then HTTP requests against the Express app pinned to one core (taskset), with a load
// generator in this process. Keys and tokens are made here; nothing leaves the machine.
//   npm run build -w erp-api && node erp-api/dist/bench/verify-rate.js [seconds]
import { spawn } from 'node:child_process';
import http from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { JwksCache } from '../src/jwks.js';
import { RevocationStore } from '../src/revocations.js';
import { createVerifier } from '../src/verify.js';
import { createApp } from '../src/app.js';

const ISS = 'http://localhost:9';
const AUD = 'https://erp-api.example';

function verifierFor(jwk: JWK) {
  const jwks = new JwksCache({
    jwksUri: `${ISS}/jwks.json`,
    fetch: async () => new Response(JSON.stringify({ keys: [jwk] }), { headers: { 'cache-control': 'max-age=600' } }),
  });
  const revocations = new RevocationStore(30_000);
  // A realistic deny-list: a thousand revoked sessions and users.
  for (let i = 0; i < 1000; i++) {
    revocations.apply({
      jti: `s${i}`,
      sub_id: { format: 'complex', session: { format: 'opaque', id: `gone-${i}` } },
      events: { 'https://schemas.openid.net/secevent/caep/event-type/session-revoked': { event_timestamp: Math.floor(Date.now() / 1000) } },
    });
  }
  return createVerifier({ issuer: ISS, audience: AUD, jwks, revocations });
}

if (process.env.BENCH_SERVER_JWK) {
  // The child: the real Express app on one port.
  const app = createApp({ verify: verifierFor(JSON.parse(process.env.BENCH_SERVER_JWK) as JWK) });
  const server = app.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    if (addr && typeof addr === 'object') process.stdout.write(`PORT ${addr.port}\n`);
  });
} else {
  const seconds = Number(process.argv[2] ?? 10);
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' };
  const now = Math.floor(Date.now() / 1000);
  const tokens = await Promise.all(
    Array.from({ length: 500 }, (_, i) =>
      new SignJWT({ scope: 'openid erp:read', sid: `sid-${i}`, roles: ['staff'], client_id: 'erp-web' })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'bench' })
        .setIssuer(ISS)
        .setAudience(AUD)
        .setSubject(`user-${i}`)
        .setJti(`j${i}`)
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .sign(privateKey),
    ),
  );

  // 1. The verifier alone, in this process.
  const verify = verifierFor(jwk);
  await verify(tokens[0]!);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < Math.min(seconds, 5) * 1000) {
    await verify(tokens[n % tokens.length]!);
    n++;
  }
  const inProcess = n / ((performance.now() - t0) / 1000);

  // 2. HTTP: the app in a child pinned to CPU 0, this process (the load) on CPU 1.
  const child = spawn('taskset', ['-c', '0', process.execPath, new URL(import.meta.url).pathname], {
    env: { ...process.env, BENCH_SERVER_JWK: JSON.stringify(jwk) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const m = /PORT (\d+)/.exec(d.toString());
      if (m?.[1]) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`bench server exited ${code}`)));
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const get = (token: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.get(
        { host: '127.0.0.1', port, path: '/api/orders', agent, headers: { authorization: `Bearer ${token}` } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
    });
  let done = 0;
  let bad = 0;
  const h0 = performance.now();
  const deadline = h0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: 32 }, async (_, w) => {
      let i = w;
      while (performance.now() < deadline) {
        const status = await get(tokens[i % tokens.length]!);
        if (status !== 200) bad++;
        done++;
        i += 32;
      }
    }),
  );
  const overHttp = done / ((performance.now() - h0) / 1000);
  child.kill('SIGTERM');
  agent.destroy();
  console.log(
    JSON.stringify({
      verifierPerSecondInProcess: Math.round(inProcess),
      httpRequestsPerSecondOneCore: Math.round(overHttp),
      httpRequests: done,
      httpNon200: bad,
      seconds,
    }),
  );
}
