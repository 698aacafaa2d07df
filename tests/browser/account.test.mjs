// Account pages: a person resets a forgotten password from the mailed link, changes it, creates
// an account and confirms it, meets the lock after too many failures, and can do all of it with
// the keyboard alone.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, newContext, signIn, startMailSink, startTessera } from './harness.mjs';

const PASSWORD = 'a calm and long passphrase';
const NEW_PASSWORD = 'quiet violet harbour at dawn';
const WRONG_PASSWORD = 'not the password at all, sorry';
const SCREENSHOT = '/tmp/tessera-reset-page.png';

let sink;
let app;
let browser;

before(async () => {
  sink = await startMailSink();
  app = await startTessera({
    TESSERA_SMTP_URL: sink.smtpUrl,
    TESSERA_MAIL_FROM: 'Tessera <no-reply@tessera.test>',
    TESSERA_SELF_REGISTRATION: 'true',
    TESSERA_LOCKOUT_THRESHOLD: '3',
  });
  for (const [email, name] of [
    ['uma@example.com', 'Uma'],
    ['vera@example.com', 'Vera'],
    ['walt@example.com', 'Walt'],
    ['yara@example.com', 'Yara'],
  ]) {
    app.addUser(email, PASSWORD, name);
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await app?.stop();
  await sink?.stop();
});

/// "Forgot your password?" from the sign-in page, all the way to the mailed link.
async function mailedResetLink(page, email) {
  await page.goto(`${app.base}/login`);
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.waitForURL(`${app.base}/password/forgot`);
  await page.getByLabel('Email').fill(email);
  await page.getByRole('button', { name: 'Send the link' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  assert.match(await page.getByRole('status').innerText(), new RegExp(`If an account exists for ${email}, we sent it a link`));
  const mail = await sink.nextMailTo(email);
  assert.equal(mail.subject, 'Reset your password');
  return mail.link(`${app.base}/password/reset?token=`);
}

test('a forgotten password is reset from the mailed link, which signs out every device and works once', async () => {
  const laptop = await newContext(browser);
  const lp = await laptop.newPage();
  await signIn(lp, app.base, 'uma@example.com', PASSWORD);

  const phone = await newContext(browser);
  const pp = await phone.newPage();
  const link = await mailedResetLink(pp, 'uma@example.com');
  await pp.goto(link);
  await pp.getByRole('heading', { name: 'Choose a new password' }).waitFor();
  await pp.screenshot({ path: SCREENSHOT, fullPage: true });

  // Two different passwords are caught and explained.
  await pp.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await pp.getByLabel('Repeat the new password').fill(`${NEW_PASSWORD}!`);
  await pp.getByRole('button', { name: 'Set the new password' }).click();
  await pp.getByRole('alert').waitFor();
  assert.equal(await pp.getByRole('alert').innerText(), 'The two passwords differ.');

  await pp.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await pp.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
  await pp.getByRole('button', { name: 'Set the new password' }).click();
  await pp.getByRole('heading', { name: 'Your password was changed' }).waitFor();
  await pp.getByRole('link', { name: 'Sign in' }).click();
  await pp.waitForURL(`${app.base}/login`);

  // The old password is refused, the new one works.
  await pp.getByLabel('Email').fill('uma@example.com');
  await pp.getByLabel('Password').fill(PASSWORD);
  await pp.getByRole('button', { name: 'Sign in', exact: true }).click();
  await pp.getByRole('alert').waitFor();
  assert.equal(await pp.getByRole('alert').innerText(), 'The email or password is incorrect.');
  await signIn(pp, app.base, 'uma@example.com', NEW_PASSWORD);

  // The laptop was signed out by the reset.
  await lp.goto(`${app.base}/account`);
  assert.equal(new URL(lp.url()).pathname, '/login');

  // The link worked once.
  await pp.goto(link);
  await pp.getByRole('heading', { name: 'This link has expired' }).waitFor();

  assert.deepEqual(laptop.cspViolations, []);
  assert.deepEqual(phone.cspViolations, []);
  await laptop.close();
  await phone.close();
});

test('changing the password keeps this browser signed in and signs the other one out', async () => {
  const laptop = await newContext(browser);
  const phone = await newContext(browser);
  const lp = await laptop.newPage();
  const pp = await phone.newPage();
  await signIn(lp, app.base, 'vera@example.com', PASSWORD);
  await signIn(pp, app.base, 'vera@example.com', PASSWORD);

  await lp.getByRole('link', { name: 'Change your password' }).click();
  await lp.waitForURL(`${app.base}/account/password`);
  await lp.getByLabel('Current password').fill(WRONG_PASSWORD);
  await lp.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await lp.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
  await lp.getByRole('button', { name: 'Change password' }).click();
  await lp.getByRole('alert').waitFor();
  assert.equal(await lp.getByRole('alert').innerText(), 'The current password is not right.');

  await lp.getByLabel('Current password').fill(PASSWORD);
  await lp.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await lp.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
  await lp.getByRole('button', { name: 'Change password' }).click();
  await lp.getByRole('status').waitFor();
  assert.equal(
    await lp.getByRole('status').innerText(),
    'Your password was changed. Your other devices were signed out.',
  );

  await lp.goto(`${app.base}/account`);
  assert.equal(new URL(lp.url()).pathname, '/account', 'this browser stays signed in');
  await pp.goto(`${app.base}/account`);
  assert.equal(new URL(pp.url()).pathname, '/login', 'the other browser is signed out');
  await signIn(pp, app.base, 'vera@example.com', NEW_PASSWORD);

  assert.deepEqual(laptop.cspViolations, []);
  assert.deepEqual(phone.cspViolations, []);
  await laptop.close();
  await phone.close();
});

test('a new account is created from the sign-in page and confirmed through the mailed link', async () => {
  const ctx = await newContext(browser);
  const page = await ctx.newPage();
  await page.goto(`${app.base}/login`);
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.waitForURL(`${app.base}/register`);
  await page.getByLabel('Name').fill('Xia');
  await page.getByLabel('Email').fill('xia@example.com');
  await page.getByLabel('Password').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  const mail = await sink.nextMailTo('xia@example.com');
  assert.equal(mail.subject, 'Confirm your email address');
  const link = mail.link(`${app.base}/verify-email?token=`);

  // Signed in but not yet confirmed: the account page says so.
  await signIn(page, app.base, 'xia@example.com', NEW_PASSWORD);
  await page.getByText('Your email address is not confirmed yet.').waitFor();

  // Opening the link confirms nothing (mail scanners prefetch links); the button does.
  await page.goto(link);
  await page.getByRole('heading', { name: 'Confirm your email address' }).waitFor();
  await page.getByRole('button', { name: 'Confirm my email address' }).click();
  await page.getByRole('heading', { name: 'Email confirmed' }).waitFor();
  await page.getByRole('link', { name: 'Go to your account' }).click();
  await page.waitForURL(`${app.base}/account`);
  await page.getByRole('heading', { name: 'Your account' }).waitFor();
  assert.equal(await page.getByText('Your email address is not confirmed yet.').count(), 0);
  assert.equal(await page.getByRole('button', { name: 'Send a confirmation link' }).count(), 0);

  assert.deepEqual(ctx.cspViolations, []);
  await ctx.close();
});

test('after repeated failures the sign-in page says the account is locked, even to the right password', async () => {
  const ctx = await newContext(browser);
  const page = await ctx.newPage();
  const attempt = async (password) => {
    await page.goto(`${app.base}/login`);
    await page.getByLabel('Email').fill('walt@example.com');
    await page.getByLabel('Password').fill(password);
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login'),
      page.getByRole('button', { name: 'Sign in', exact: true }).click(),
    ]);
    await page.getByRole('alert').waitFor();
    return { status: response.status(), retryAfter: response.headers()['retry-after'], alert: await page.getByRole('alert').innerText() };
  };
  for (let i = 0; i < 3; i++) {
    const failed = await attempt(WRONG_PASSWORD);
    assert.equal(failed.status, 401);
    assert.equal(failed.alert, 'The email or password is incorrect.');
  }
  const locked = await attempt(PASSWORD);
  assert.equal(locked.status, 429);
  assert.match(locked.retryAfter ?? '', /^\d+$/);
  assert.match(locked.alert, /^Too many failed attempts\. For your security, try again in 1 minute\.$/);
  assert.equal(new URL(page.url()).pathname, '/login');

  assert.deepEqual(ctx.cspViolations, []);
  await ctx.close();
});

/// Where the keyboard focus is: an element's id, or a button's text.
async function focused(page) {
  return page.evaluate(() => {
    const e = document.activeElement;
    if (!e || e === document.body) return null;
    return e.tagName === 'BUTTON' ? `button:${e.textContent.trim()}` : e.id || `${e.tagName.toLowerCase()}:${e.textContent.trim()}`;
  });
}

/// Every element Tab reaches from where the page starts (its autofocus field, if any).
async function reachedByTab(page, presses = 15) {
  const reached = new Set();
  const first = await focused(page);
  if (first) reached.add(first);
  for (let i = 0; i < presses; i++) {
    await page.keyboard.press('Tab');
    const now = await focused(page);
    if (now) reached.add(now);
  }
  return reached;
}

test('every account page works with the keyboard and each field has its label', async () => {
  const ctx = await newContext(browser);
  const page = await ctx.newPage();
  const resetLink = await mailedResetLink(page, 'yara@example.com');
  const visitor = [
    ['/login', { Email: 'email', Password: 'password' }, 'Sign in'],
    ['/password/forgot', { Email: 'email' }, 'Send the link'],
    [resetLink.slice(app.base.length), { 'New password': 'password', 'Repeat the new password': 'confirm' }, 'Set the new password'],
    ['/register', { Name: 'name', Email: 'email', Password: 'password' }, 'Create account'],
  ];
  const member = [
    ['/account/password', { 'Current password': 'current', 'New password': 'password', 'Repeat the new password': 'confirm' }, 'Change password'],
  ];
  const check = async ([path, fields, submit]) => {
    await page.goto(`${app.base}${path}`);
    assert.equal(new URL(page.url()).pathname, path.split('?')[0], `${path} shows its form`);
    for (const [label, id] of Object.entries(fields)) {
      const input = page.getByLabel(label, { exact: true });
      assert.equal(await input.count(), 1, `${path}: one field is labelled "${label}"`);
      assert.equal(await input.getAttribute('id'), id, `${path}: "${label}" labels #${id}`);
    }
    const reached = await reachedByTab(page);
    for (const id of Object.values(fields)) {
      assert.ok(reached.has(id), `${path}: Tab reaches #${id}; it reached ${[...reached].join(', ')}`);
    }
    assert.ok(reached.has(`button:${submit}`), `${path}: Tab reaches "${submit}"; it reached ${[...reached].join(', ')}`);
  };
  for (const form of visitor) await check(form);
  await signIn(page, app.base, 'yara@example.com', PASSWORD);
  for (const form of member) await check(form);

  // And the keyboard alone sends a form: type, Enter.
  await page.goto(`${app.base}/password/forgot`);
  assert.equal(await focused(page), 'email', 'the email field has the focus on arrival');
  await page.keyboard.type('yara@example.com');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await focused(page), 'a:Back to sign in');

  assert.deepEqual(ctx.cspViolations, []);
  await ctx.close();
});
