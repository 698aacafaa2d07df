// The admin console as an operator uses it, in headless Chromium with the keyboard and links:
// an admin made with the CLI adds an authenticator app (admins must use a second factor), opens
// the console, finds a user by a substring of their email, disables them (the user's refresh
// token fails at once and introspection says inactive), enables them again, rotates a client's
// secret (the old one works only during the overlap, configured short here), and reads the
// audit entries of all of it.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { launchBrowser, newContext, signIn, signInAdmin, startTessera } from './harness.mjs';

const PASSWORD = 'a calm and long passphrase';
const ADMIN = 'root@example.com';
const DANA = 'dana.kowalski@example.test';
/// Seconds the previous client secret keeps working after a rotation (client_secret_overlap).
const OVERLAP = 4;

let CALLBACK;
let rp;
let app;
let browser;
let erpSecret;
let billingSecret;

before(async () => {
  rp = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('back at the ERP');
  });
  await new Promise((r) => rp.listen(0, '127.0.0.1', r));
  CALLBACK = `http://localhost:${rp.address().port}/callback`;
  app = await startTessera({ TESSERA_CLIENT_SECRET_OVERLAP: `${OVERLAP}s` });
  app.cli(['user', 'add', '--email', ADMIN, '--name', 'Root', '--role', 'admin', '--password-stdin'], PASSWORD);
  app.addUser(DANA, PASSWORD, 'Dana Kowalski');
  app.addUser('someone.else@example.test', PASSWORD, 'Someone Else');
  erpSecret = printedSecret(app.cli(['client', 'add', '--id', 'erp', '--redirect-uri', CALLBACK, '--first-party']));
  billingSecret = printedSecret(
    app.cli(['client', 'add', '--id', 'billing', '--grant', 'client_credentials', '--scope', 'invoices.read']),
  );
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await app?.stop();
  rp?.close();
});

function printedSecret(stdout) {
  const line = stdout.split('\n').find((l) => l.trim().startsWith('client_secret:'));
  assert.ok(line, `the CLI prints the secret:\n${stdout}`);
  return line.trim().slice('client_secret:'.length).trim();
}

function basic(id, secret) {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function tokenRequest(id, secret, params) {
  return fetch(`${app.base}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: basic(id, secret) },
    body: new URLSearchParams(params),
  });
}

async function introspect(token) {
  const res = await fetch(`${app.base}/introspect`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: basic('erp', erpSecret) },
    body: new URLSearchParams({ token }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

/// Dana signs in to the ERP in her own browser; the ERP redeems the code (PKCE) for tokens.
async function danaTokens() {
  const context = await newContext(browser);
  const page = await context.newPage();
  const verifier = randomBytes(32).toString('base64url');
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: 'erp',
    redirect_uri: CALLBACK,
    scope: 'openid email offline_access',
    state: randomBytes(8).toString('base64url'),
    nonce: randomBytes(8).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  });
  await page.goto(`${app.base}/authorize?${q}`);
  await page.getByLabel('Email').fill(DANA);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL((u) => u.href.startsWith(CALLBACK));
  const code = new URL(page.url()).searchParams.get('code');
  await context.close();
  const res = await tokenRequest('erp', erpSecret, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: CALLBACK,
    code_verifier: verifier,
  });
  assert.equal(res.status, 200, await res.clone().text());
  const tokens = await res.json();
  assert.ok(tokens.refresh_token, 'the ERP gets a refresh token');
  return tokens;
}

/// Follows a link of the page with the keyboard: focus it, press Enter.
async function followLink(page, name) {
  const link = page.getByRole('link', { name, exact: true });
  await link.focus();
  await Promise.all([page.waitForLoadState('load'), page.keyboard.press('Enter')]);
  await page.waitForLoadState('load');
}

/// Presses a button with the keyboard and waits for the page it leads to.
async function pressButton(page, name) {
  const button = page.getByRole('button', { name, exact: true });
  await button.focus();
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
}

test('an admin finds a user by part of their email, disables and enables them, rotates a secret, and reads the log', async () => {
  const tokens = await danaTokens();
  assert.equal((await introspect(tokens.access_token)).active, true);

  const context = await newContext(browser);
  const page = await context.newPage();

  // First sign-in of the admin: a second factor is required, so the account asks for one;
  // then the console wants the password and the next code.
  await signInAdmin(page, app.base, ADMIN, PASSWORD);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();

  // Users: find Dana by a substring of her email, typed and sent with Enter.
  await followLink(page, 'Users');
  await page.getByRole('heading', { name: 'Users' }).waitFor();
  await page.getByLabel('Email, name or id (any part of it)').fill('KOWAL');
  await Promise.all([page.waitForNavigation(), page.getByLabel('Email, name or id (any part of it)').press('Enter')]);
  const rows = page.locator('#users tbody tr');
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().innerText(), /Dana Kowalski/);
  await followLink(page, DANA);
  await page.getByRole('heading', { name: DANA }).waitFor();
  assert.match(await page.locator('#user-status').innerText(), /active/);

  // Disable, after the confirmation page.
  await followLink(page, 'Disable this user…');
  await page.getByRole('heading', { name: `Disable ${DANA}?` }).waitFor();
  assert.equal((await introspect(tokens.access_token)).active, true, 'the confirmation alone changes nothing');
  await pressButton(page, 'Disable');
  assert.equal(await page.locator('#done-message').innerText(), 'Disabled; 1 session ended.');

  // At once: the refresh token fails and the access token introspects inactive.
  const refused = await tokenRequest('erp', erpSecret, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
  assert.equal(refused.status, 400);
  assert.equal((await refused.json()).error, 'invalid_grant');
  assert.equal((await introspect(tokens.access_token)).active, false);

  // Enable again: the user's page says so, and Dana can sign in to the ERP again.
  await followLink(page, 'Back');
  assert.match(await page.locator('#user-status').innerText(), /disabled/);
  await followLink(page, 'Enable this user…');
  await pressButton(page, 'Enable');
  assert.match(await page.locator('#done-message').innerText(), /^Enabled/);
  await followLink(page, 'Back');
  assert.match(await page.locator('#user-status').innerText(), /active/);
  const again = await danaTokens();
  assert.equal((await introspect(again.access_token)).active, true);

  // Clients: rotate the billing service's secret with the configured (short) overlap.
  await followLink(page, 'Clients');
  await followLink(page, 'billing');
  const overlap = page.getByLabel('Rotate the secret; the old one keeps working for');
  assert.equal(await overlap.inputValue(), String(OVERLAP), 'the configured overlap is the default');
  await pressButton(page, 'Rotate the secret…');
  await page.getByRole('heading', { name: 'Rotate the secret of billing?' }).waitFor();
  await pressButton(page, 'Rotate the secret');
  const rotatedAt = Date.now();
  const newSecret = await page.getByLabel('Client secret').inputValue();
  assert.notEqual(newSecret, billingSecret);
  const cc = (secret) => tokenRequest('billing', secret, { grant_type: 'client_credentials' });
  assert.equal((await cc(billingSecret)).status, 200, 'the old secret works during the overlap');
  assert.equal((await cc(newSecret)).status, 200);
  await new Promise((r) => setTimeout(r, Math.max(0, rotatedAt + (OVERLAP + 1.5) * 1000 - Date.now())));
  assert.equal((await cc(billingSecret)).status, 401, 'and not after it');
  assert.equal((await cc(newSecret)).status, 200);

  // Audit: what this admin just did, filtered by actor.
  const adminId = JSON.parse(app.cli(['user', 'show', ADMIN, '--json'])).user.id;
  await followLink(page, 'Audit');
  await page.getByLabel('Actor starts with').fill(`admin:${adminId}`);
  await Promise.all([page.waitForNavigation(), page.getByLabel('Actor starts with').press('Enter')]);
  const log = await page.locator('table.audit').innerText();
  for (const action of ['user.disabled', 'user.enabled', 'client.secret_rotated']) {
    assert.match(log, new RegExp(action.replace('.', '\\.')), `${action} is in the log`);
  }
  assert.doesNotMatch(log, new RegExp(newSecret), 'no secret in the log');
  await pressButton(page, 'Verify chain');
  assert.match(await page.locator('#chain-verdict').innerText(), /Intact/);

  assert.deepEqual(context.cspViolations, []);
  await context.close();
});

test('a signed-in person who is not an admin gets the ordinary not-found page', async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await signIn(page, app.base, 'someone.else@example.test', PASSWORD);
  for (const path of ['/admin', '/admin/users', '/admin/users?q=kowal']) {
    const res = await page.goto(`${app.base}${path}`);
    assert.equal(res.status(), 404, path);
  }
  await context.close();
});
