// "Devices and sessions": a person sees where they are signed in and signs devices out.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, newContext, signIn, startTessera } from './harness.mjs';

const LAPTOP = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36';
const PHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1';
const PASSWORD = 'a calm and long passphrase';

let app;
let browser;

before(async () => {
  app = await startTessera();
  app.addUser('ann@example.com', PASSWORD, 'Ann');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await app?.stop();
});

test('the sessions page lists each device, marks this one, and signs others out', async () => {
  const laptop = await newContext(browser, LAPTOP);
  const phone = await newContext(browser, PHONE);
  const lp = await laptop.newPage();
  const pp = await phone.newPage();
  await signIn(lp, app.base, 'ann@example.com', PASSWORD);
  await signIn(pp, app.base, 'ann@example.com', PASSWORD);

  await lp.goto(`${app.base}/account/sessions`);
  const items = lp.locator('li.session');
  await assert.doesNotReject(items.first().waitFor());
  assert.equal(await items.count(), 2);
  const current = lp.locator('li.session.current');
  assert.equal(await current.count(), 1);
  assert.match(await current.innerText(), /Chrome on Linux/);
  assert.match(await current.innerText(), /This device/);
  const other = lp.locator('li.session:not(.current)');
  assert.match(await other.innerText(), /Safari on iOS/);

  // Sign the phone out from the laptop.
  await other.getByRole('button', { name: 'Sign out' }).click();
  await assert.doesNotReject(lp.getByRole('status').waitFor());
  assert.match(await lp.getByRole('status').innerText(), /Signed out Safari on iOS/);
  assert.equal(await lp.locator('li.session').count(), 1);

  // The phone is signed out at once.
  await pp.goto(`${app.base}/account`);
  assert.equal(new URL(pp.url()).pathname, '/login');

  // "Sign out all other devices" keeps this one.
  await signIn(pp, app.base, 'ann@example.com', PASSWORD);
  await lp.goto(`${app.base}/account/sessions`);
  assert.equal(await lp.locator('li.session').count(), 2);
  await lp.locator('#sign-out-others').click();
  await assert.doesNotReject(lp.getByRole('status').waitFor());
  assert.equal(await lp.locator('li.session').count(), 1);
  await pp.goto(`${app.base}/account`);
  assert.equal(new URL(pp.url()).pathname, '/login');

  // "Sign out all devices" ends this one too.
  await lp.locator('#sign-out-everywhere').click();
  await assert.doesNotReject(lp.getByRole('heading', { name: 'You are signed out' }).waitFor());
  await lp.goto(`${app.base}/account`);
  assert.equal(new URL(lp.url()).pathname, '/login');

  assert.deepEqual(laptop.cspViolations, []);
  assert.deepEqual(phone.cspViolations, []);
  await laptop.close();
  await phone.close();
});

test('pages carry the security headers and the session cookie is HttpOnly and SameSite', async () => {
  const ctx = await newContext(browser);
  const page = await ctx.newPage();
  const res = await page.goto(`${app.base}/login`);
  const h = res.headers();
  assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
  assert.doesNotMatch(h['content-security-policy'], /unsafe-inline|unsafe-eval/);
  assert.equal(h['x-content-type-options'], 'nosniff');
  assert.equal(h['referrer-policy'], 'no-referrer');
  assert.equal(h['cache-control'], 'no-store');
  await signIn(page, app.base, 'ann@example.com', PASSWORD);
  const cookie = (await ctx.cookies()).find((c) => c.name === 'tessera_session');
  assert.ok(cookie, 'session cookie set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Lax');
  await ctx.close();
});
