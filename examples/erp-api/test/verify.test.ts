import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { FeedFollower } from '../src/feed.js';
import { JwksCache, maxAgeSeconds } from '../src/jwks.js';
import { RevocationStore, SESSION_REVOKED, TOKEN_REVOKED } from '../src/revocations.js';
import { createVerifier, TokenError } from '../src/verify.js';

const ISS = 'http://localhost:9999';
const AUD = 'https://erp-api.example';
const JWKS_URI = `${ISS}/jwks.json`;

async function keyPair(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return { kid, privateKey, jwk };
}
type Pair = Awaited<ReturnType<typeof keyPair>>;

/// A fake Tessera: a JWKS (with a Cache-Control), a clock, and a counter of JWKS fetches.
async function world(opts: { maxAge?: number } = {}) {
  const state = {
    now: 1_800_000_000_000,
    published: [] as Pair[],
    jwksFetches: 0,
  };
  state.published.push(await keyPair('k1'));
  const fetchFn = async (url: string) => {
    assert.equal(url, JWKS_URI);
    state.jwksFetches += 1;
    return new Response(JSON.stringify({ keys: state.published.map((p) => p.jwk) }), {
      headers: { 'content-type': 'application/json', 'cache-control': `public, max-age=${opts.maxAge ?? 600}` },
    });
  };
  const jwks = new JwksCache({ jwksUri: JWKS_URI, fetch: fetchFn, now: () => state.now, cooldownMs: 10_000 });
  const revocations = new RevocationStore(30_000, () => state.now);
  const verify = createVerifier({ issuer: ISS, audience: AUD, jwks, revocations, leewaySeconds: 5, now: () => state.now });
  const sec = () => Math.floor(state.now / 1000);
  const sign = (claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key = state.published[0]!) =>
    new SignJWT({ scope: 'openid erp:read', sid: 'sid-1', client_id: 'erp-web', ...claims })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid, ...header })
      .setIssuer((claims.iss as string) ?? ISS)
      .setAudience((claims.aud as string) ?? AUD)
      .setSubject((claims.sub as string) ?? 'user-1')
      .setJti(`jti-${Math.random()}`)
      .setIssuedAt((claims.iat as number) ?? sec())
      .setExpirationTime(sec() + 20)
      .sign(key.privateKey);
  return { state, jwks, revocations, verify, sign, sec };
}

async function refused(p: Promise<unknown>, why?: RegExp) {
  await assert.rejects(p, (e: unknown) => e instanceof TokenError && (!why || why.test(e.message)));
}

test('a good access token is accepted and its claims returned', async () => {
  const w = await world();
  const t = await w.verify(await w.sign({ roles: ['staff'] }));
  assert.equal(t.sub, 'user-1');
  assert.deepEqual(t.roles, ['staff']);
});

test('a token signed with an algorithm outside the allow-list is refused', async () => {
  const w = await world();
  const hs = await new SignJWT({ sub: 'user-1' })
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' })
    .setIssuer(ISS)
    .setAudience(AUD)
    .setIssuedAt(w.sec())
    .setExpirationTime(w.sec() + 20)
    .setJti('x')
    .sign(new TextEncoder().encode('a secret of thirty-two bytes or more!'));
  await refused(w.verify(hs));
  const none = `${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${Buffer.from(
    JSON.stringify({ iss: ISS, aud: AUD, sub: 'user-1', exp: w.sec() + 20, iat: w.sec(), jti: 'n' }),
  ).toString('base64url')}.`;
  await refused(w.verify(none));
});

test('an ID token or any JWT whose typ is not at+jwt is refused', async () => {
  const w = await world();
  await refused(w.verify(await w.sign({}, { typ: 'JWT' })), /typ/);
  await refused(w.verify(await w.sign({}, { typ: 'logout+jwt' })), /typ/);
});

test('a token of another issuer or for another audience is refused', async () => {
  const w = await world();
  await refused(w.verify(await w.sign({ iss: 'http://evil.example' })), /iss/);
  await refused(w.verify(await w.sign({ aud: 'https://other-api.example' })), /aud/);
});

test('an expired token is refused past the leeway and accepted within it', async () => {
  const w = await world();
  const t = await w.sign();
  w.state.now += 24_000; // 4 s past exp: within the 5 s leeway
  await w.verify(t);
  w.state.now += 2_000; // 6 s past exp
  await refused(w.verify(t), /exp/);
});

test('a token not yet valid (nbf) is refused past the leeway', async () => {
  const w = await world();
  await w.verify(await w.sign({ nbf: w.sec() + 4 }));
  await refused(w.verify(await w.sign({ nbf: w.sec() + 30 })), /nbf/);
});

test('an unknown kid makes one JWKS refetch, then is answered from the cache until the cooldown ends', async () => {
  const w = await world();
  await w.verify(await w.sign());
  assert.equal(w.state.jwksFetches, 1);
  const stranger = await keyPair('k-unknown');
  const forged = await w.sign({}, {}, stranger);
  w.state.now += 11_000;
  await refused(w.verify(forged), /unknown signing key/);
  assert.equal(w.state.jwksFetches, 2, 'one refetch for the unknown kid');
  for (let i = 0; i < 5; i++) await refused(w.verify(forged));
  assert.equal(w.state.jwksFetches, 2, 'no more fetches within the cooldown');
  w.state.now += 10_000;
  await refused(w.verify(forged));
  assert.equal(w.state.jwksFetches, 3, 'one more after the cooldown');
});

test('a rotated-in key is fetched on first sight, so rotation fails no request', async () => {
  const w = await world();
  await w.verify(await w.sign());
  const next = await keyPair('k2');
  w.state.published.push(next);
  w.state.now += 60_000;
  const t = await w.sign({}, {}, next);
  await w.verify(t);
  assert.equal(w.state.jwksFetches, 2);
  // Concurrent requests with a new kid share one fetch.
  const third = await keyPair('k3');
  w.state.published.push(third);
  w.state.now += 60_000;
  const tokens = await Promise.all(Array.from({ length: 10 }, () => w.sign({}, {}, third)));
  await Promise.all(tokens.map((x) => w.verify(x)));
  assert.equal(w.state.jwksFetches, 3);
});

test('the JWKS is cached for the max-age its answer gives, then fetched again', async () => {
  const w = await world({ maxAge: 60 });
  await w.verify(await w.sign());
  w.state.now += 59_000;
  await w.verify(await w.sign());
  assert.equal(w.state.jwksFetches, 1);
  w.state.now += 2_000;
  await w.verify(await w.sign());
  assert.equal(w.state.jwksFetches, 2);
  assert.equal(maxAgeSeconds('public, max-age=300'), 300);
  assert.equal(maxAgeSeconds('no-store'), 0);
  assert.equal(maxAgeSeconds(null), undefined);
});

const sessionSet = (jti: string, sid: string, at: number) => ({
  jti,
  sub_id: { format: 'complex', session: { format: 'opaque', id: sid }, user: { format: 'iss_sub', iss: ISS, sub: 'user-1' } },
  events: { [SESSION_REVOKED]: { event_timestamp: at } },
});
const userSet = (jti: string, sub: string, at: number) => ({
  jti,
  sub_id: { format: 'iss_sub', iss: ISS, sub },
  events: { [SESSION_REVOKED]: { event_timestamp: at } },
});

test('a token of a revoked session is refused; another session of the same user is not', async () => {
  const w = await world();
  const mine = await w.sign({ sid: 'sid-1' });
  const other = await w.sign({ sid: 'sid-2' });
  assert.equal(w.revocations.apply(sessionSet('e1', 'sid-1', w.sec())), 'applied');
  await refused(w.verify(mine), /session revoked/);
  await w.verify(other);
});

test('a user revoked at T loses the tokens issued at or before T, not those issued after', async () => {
  const w = await world();
  const before = await w.sign();
  const T = w.sec();
  w.revocations.apply(userSet('e2', 'user-1', T));
  await refused(w.verify(before), /user revoked/);
  await refused(w.verify(await w.sign({ iat: T })), /user revoked/);
  w.state.now += 1_000;
  await w.verify(await w.sign({ sid: 'sid-new' })); // signed in again after T
  await w.verify(await w.sign({ sub: 'user-2' }));
});

test('a SET seen twice is applied once; unknown event types are ignored; entries expire after retention', async () => {
  const w = await world();
  assert.equal(w.revocations.apply(sessionSet('e1', 'sid-1', w.sec())), 'applied');
  assert.equal(w.revocations.apply(sessionSet('e1', 'sid-1', w.sec())), 'duplicate');
  assert.equal(
    w.revocations.apply({ jti: 'e9', sub_id: { format: 'iss_sub', sub: 'user-1' }, events: { 'https://example.com/other': {} } }),
    'ignored',
  );
  assert.equal(w.revocations.revoked({ sub: 'user-1', sid: 'sid-9', iat: 0 }), undefined);
  w.state.now += 31_000; // retention is 30 s here
  w.revocations.prune();
  assert.deepEqual(w.revocations.size, { sessions: 0, users: 0, tokens: 0, seen: 0 });
});

test('the feed follower verifies SETs, dedupes a repeated one, advances its cursor and renews its token on 401', async () => {
  const w = await world();
  const key = w.state.published[0]!;
  const setJwt = (claims: Record<string, unknown>, typ = 'secevent+jwt') =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', typ, kid: key.kid })
      .setIssuer(ISS)
      .setAudience('erp-api')
      .setIssuedAt(w.sec())
      .sign(key.privateKey);
  const s1 = await setJwt(sessionSet('e1', 'sid-1', w.sec()));
  const s2 = await setJwt(userSet('e2', 'user-7', w.sec()));
  const wrongTyp = await setJwt(sessionSet('e3', 'sid-3', w.sec()), 'JWT');
  const pages: Record<string, object> = {
    '': { sets: { e1: s1 }, moreAvailable: true, cursor: 'c1' },
    c1: { sets: { e1: s1, e2: s2 }, moreAvailable: false, cursor: 'c2' },
    c2: { sets: { e3: wrongTyp }, moreAvailable: false, cursor: 'c3' },
    c3: { sets: {}, moreAvailable: false, cursor: 'c3' },
  };
  const seenCursors: string[] = [];
  let tokens = 0;
  let expireNext = false;
  const fetchFn = async (url: string, init?: RequestInit) => {
    if (url === JWKS_URI) return new Response(JSON.stringify({ keys: [key.jwk] }));
    if (url === `${ISS}/token`) {
      tokens += 1;
      assert.match(String(init?.body), /grant_type=client_credentials&scope=tessera%3Arevocations/);
      return Response.json({ access_token: `cc-${tokens}`, token_type: 'Bearer' });
    }
    const u = new URL(url);
    const auth = new Headers(init?.headers).get('authorization');
    if (expireNext || auth !== `Bearer cc-${tokens}`) {
      expireNext = false;
      return new Response('', { status: 401 });
    }
    const cursor = u.searchParams.get('cursor') ?? '';
    seenCursors.push(cursor);
    return Response.json(pages[cursor], { headers: { 'cache-control': 'private, max-age=1' } });
  };
  const feed = new FeedFollower({
    issuer: ISS,
    tokenEndpoint: `${ISS}/token`,
    eventsEndpoint: `${ISS}/ssf/events`,
    clientId: 'erp-api',
    clientSecret: 's',
    jwks: w.jwks,
    revocations: w.revocations,
    fetch: fetchFn,
    now: () => w.state.now,
  });
  assert.equal(await feed.pollOnce(), 0, 'more available: poll again at once');
  assert.equal(await feed.pollOnce(), 1000, 'at the tail: max-age');
  assert.equal(feed.applied, 2);
  assert.equal(feed.duplicates, 1);
  assert.ok(w.revocations.revoked({ sid: 'sid-1' }));
  assert.ok(w.revocations.revoked({ sub: 'user-7', iat: w.sec() }));
  // A SET that never verifies is retried, then skipped: the feed does not stall.
  for (let i = 0; i < 3; i++) await feed.pollOnce();
  assert.equal(feed.rejected, 1);
  assert.equal(w.revocations.revoked({ sid: 'sid-3' }), undefined);
  expireNext = true;
  await feed.pollOnce();
  assert.equal(tokens, 2, 'a 401 gets a new client_credentials token');
  assert.deepEqual(seenCursors, ['', 'c1', 'c2', 'c2', 'c2', 'c3']);
});

test('the routes require their scope, role and acr, and never say why a token was refused', async () => {
  const { createApp } = await import('../src/app.js');
  const w = await world();
  const server = createApp({ verify: w.verify }).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as { port: number };
  const get = async (path: string, token?: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    return { status: res.status, challenge: res.headers.get('www-authenticate') ?? '', body: await res.text() };
  };
  try {
    assert.equal((await get('/api/orders')).status, 401);
    const expired = await w.sign({ roles: ['staff'] });
    w.state.now += 60_000;
    const e = await get('/api/orders', expired);
    assert.equal(e.status, 401);
    assert.match(e.challenge, /invalid_token/);
    assert.doesNotMatch(e.body, /exp/);
    assert.equal((await get('/api/orders', await w.sign({ roles: ['staff'] }))).status, 200);
    assert.equal((await get('/api/orders', await w.sign({ roles: ['staff'], scope: 'openid' }))).status, 403);
    assert.equal((await get('/api/orders', await w.sign({ roles: ['guest'] }))).status, 403);
    const noAcr = await get('/api/payroll', await w.sign({ roles: ['finance'], acr: '1' }));
    assert.equal(noAcr.status, 401);
    assert.match(noAcr.challenge, /insufficient_user_authentication.*acr_values="2"/);
    assert.equal((await get('/api/payroll', await w.sign({ roles: ['staff'], acr: '2' }))).status, 403);
    assert.equal((await get('/api/payroll', await w.sign({ roles: ['finance'], acr: '2' }))).status, 200);
  } finally {
    server.close();
  }
});

test('one access token revoked (RFC 7009, Tessera\'s token event) is refused until it expires; others are not', async () => {
  const w = await world();
  const token = await w.sign();
  const { jti, exp } = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { jti: string; exp: number };
  assert.equal(
    w.revocations.apply({ jti: 'e5', sub_id: { format: 'opaque', id: jti }, events: { [TOKEN_REVOKED]: { event_timestamp: w.sec(), jti, exp } } }),
    'applied',
  );
  await refused(w.verify(token), /token revoked/);
  await w.verify(await w.sign());
  w.state.now = exp * 1000 + 11_000;
  w.revocations.prune();
  assert.equal(w.revocations.size.tokens, 0);
});
