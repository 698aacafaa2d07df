// Passkeys in headless Chromium with the DevTools virtual authenticator (a platform
// authenticator that keeps discoverable credentials and verifies the user): a person adds a
// passkey, signs out, signs in to an application with the passkey alone (the ID token says
// acr "2"), the same answer posted again is refused, and a removed passkey no longer signs in.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { launchBrowser, newContext, signIn, startMailSink, startTessera } from './harness.mjs';

const PASSWORD = 'a calm and long passphrase';
/// The ERP's redirect URI: a small server in this process that records where it was sent.
let CALLBACK;
let erp;
const callbacks = [];

let sink;
let app;
let browser;

before(async () => {
  erp = http.createServer((req, res) => {
    if (req.url.startsWith('/callback?')) callbacks.push(`${CALLBACK}${req.url.slice('/callback'.length)}`);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('back at the ERP');
  });
  await new Promise((r) => erp.listen(0, '127.0.0.1', r));
  CALLBACK = `http://localhost:${erp.address().port}/callback`;
  sink = await startMailSink();
  app = await startTessera({
    TESSERA_SMTP_URL: sink.smtpUrl,
    TESSERA_MAIL_FROM: 'Tessera <no-reply@tessera.test>',
  });
  app.addUser('pia@example.com', PASSWORD, 'Pia');
  app.addUser('sol@example.com', PASSWORD, 'Sol');
  app.cli(['client', 'add', '--id', 'erp', '--public', '--redirect-uri', CALLBACK, '--first-party']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await app?.stop();
  await sink?.stop();
  erp?.close();
});

/// A context whose pages see one virtual platform authenticator (ctap2, internal transport,
/// resident keys, user verification that always succeeds).
async function contextWithAuthenticator() {
  const context = await newContext(browser);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  const credentials = async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
  return { context, page, credentials };
}

async function signOut(page) {
  await page.goto(`${app.base}/account`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'You are signed out' }).waitFor();
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

/// Starts an authorization request of the ERP (PKCE) and returns what the token request needs.
function authorizeUrl() {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: 'erp',
    redirect_uri: CALLBACK,
    scope: 'openid email',
    state: b64url(randomBytes(8)),
    nonce: b64url(randomBytes(8)),
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  return { url: `${app.base}/authorize?${q}`, verifier };
}

async function redeem(code, verifier) {
  const res = await fetch(`${app.base}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: CALLBACK,
      client_id: 'erp',
      code_verifier: verifier,
    }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

test('a passkey is added, signs in alone with acr "2", cannot be replayed, and stops working once removed', async () => {
  const { context, page, credentials } = await contextWithAuthenticator();

  // Add a passkey from the account.
  await signIn(page, app.base, 'pia@example.com', PASSWORD);
  await page.getByRole('link', { name: 'Passkeys and security keys' }).click();
  await page.getByLabel('Name').fill('Work laptop');
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  const item = page.locator('#passkey-list li', { hasText: 'Work laptop' });
  await item.waitFor();
  assert.match(await item.innerText(), /Passkey/);
  assert.match(await item.innerText(), /never used/);
  const stored = await credentials();
  assert.equal(stored.length, 1);
  assert.equal(stored[0].isResidentCredential, true, 'a passkey is a discoverable credential');
  const added = await sink.nextMailTo('pia@example.com');
  assert.equal(added.subject, 'A passkey was added to your account');
  assert.match(added.body, /Work laptop/);

  await signOut(page);

  // The ERP asks who this is. The sign-in page offers passkey autofill (conditional
  // mediation on the email field); the virtual authenticator picks the passkey at once, so
  // the person is back at the ERP without typing anything.
  const login = await (await fetch(`${app.base}/login`)).text();
  assert.match(login, /<input id="email"[^>]* autocomplete="username webauthn"/);
  let posted = null;
  page.on('request', (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname === '/login/passkey') posted = r;
  });
  const first = authorizeUrl();
  await page.goto(first.url);
  await page.waitForURL(`${CALLBACK}**`);
  let id = claims((await redeem(new URL(callbacks.at(-1)).searchParams.get('code'), first.verifier)).id_token);
  assert.equal(id.acr, '2');
  assert.deepEqual([...id.amr].sort(), ['hwk', 'mfa', 'user']);
  assert.equal(id.email, 'pia@example.com');

  // The same answer, with the same cookies, posted again: the ceremony was used up.
  assert.ok(posted, 'the passkey answer was posted as a form');
  const replay = await fetch(posted.url(), {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Cookie: (await posted.allHeaders()).cookie,
    },
    body: posted.postData(),
    redirect: 'manual',
  });
  assert.equal(replay.status, 400);
  assert.match(await replay.text(), /took too long or was already used/);

  // Without autofill (a browser that lacks it), the button does the same.
  await signOut(page);
  await context.addInitScript(() => {
    PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
  const second = authorizeUrl();
  await page.goto(second.url);
  await page.getByRole('button', { name: /passkey/i }).click();
  await page.waitForURL(`${CALLBACK}**`);
  id = claims((await redeem(new URL(callbacks.at(-1)).searchParams.get('code'), second.verifier)).id_token);
  assert.equal(id.acr, '2');

  // Remove it (the passkey sign-in just now counts as a recent authentication).
  await page.goto(`${app.base}/account/passkeys`);
  const listed = page.locator('#passkey-list li', { hasText: 'Work laptop' });
  assert.match(await listed.innerText(), /last used/);
  await listed.getByRole('button', { name: 'Remove Work laptop' }).click();
  await page.getByRole('status').waitFor();
  assert.match(await page.getByRole('status').innerText(), /Removed/);
  assert.equal(await page.locator('#passkey-list li').count(), 0);
  const removed = await sink.nextMailTo('pia@example.com');
  assert.equal(removed.subject, 'A passkey was removed from your account');

  // The authenticator still holds the credential, but it signs in no more.
  await signOut(page);
  await page.goto(`${app.base}/login`);
  await page.getByRole('button', { name: /passkey/i }).click();
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').innerText(), /not accepted/);
  assert.equal(new URL(page.url()).pathname, '/login/passkey');

  assert.deepEqual(context.cspViolations, []);
  await context.close();
});

test('a passkey cannot be added by a request forged from another site', async () => {
  const { context, page } = await contextWithAuthenticator();
  await signIn(page, app.base, 'pia@example.com', PASSWORD);
  // A wrong CSRF token: refused before any ceremony starts.
  const res = await page.request.post(`${app.base}/account/passkeys/begin`, {
    data: { csrf_token: 'forged', style: 'passkey' },
  });
  assert.equal(res.status(), 403);
  await context.close();
});

test('a security key is the second step after the password, and the ID token says so', async () => {
  const { context, page, credentials } = await contextWithAuthenticator();
  // A security key is not offered by autofill; keep the sign-in page's autofill out of the way.
  await context.addInitScript(() => {
    PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
  await signIn(page, app.base, 'sol@example.com', PASSWORD);
  await page.goto(`${app.base}/account/passkeys`);
  await page.getByLabel('Name').fill('YubiKey');
  await page.getByRole('button', { name: 'Add a security key' }).click();
  const item = page.locator('#passkey-list li', { hasText: 'YubiKey' });
  await item.waitFor();
  assert.match(await item.innerText(), /Security key/);
  assert.equal((await credentials())[0].isResidentCredential, false, 'a security key need not keep the account');
  await signOut(page);

  // The password alone opens no session: the second step offers the key.
  const { url, verifier } = authorizeUrl();
  await page.goto(url);
  await page.getByLabel('Email').fill('sol@example.com');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'Two-step verification' }).waitFor();
  await page.getByRole('button', { name: /security key/i }).click();
  await page.waitForURL(`${CALLBACK}**`);
  const id = claims((await redeem(new URL(callbacks.at(-1)).searchParams.get('code'), verifier)).id_token);
  assert.equal(id.acr, '2');
  assert.deepEqual([...id.amr].sort(), ['hwk', 'mfa', 'pwd']);

  // A security key does not sign in alone.
  await signOut(page);
  await page.goto(`${app.base}/login`);
  await page.getByRole('button', { name: /passkey/i }).click();
  await page.getByRole('alert').first().waitFor();
  assert.equal(new URL(page.url()).pathname, '/login');

  assert.deepEqual(context.cspViolations, []);
  await context.close();
});
