// Starts a real Tessera process for browser tests and drives its CLI, like the Rust suite does.
import { spawn, execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const here = path.dirname(new URL(import.meta.url).pathname);

export function tesseraBin() {
  if (process.env.TESSERA_BIN) return process.env.TESSERA_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(here, '..', '..', 'target');
  return path.join(target, 'debug', 'tessera');
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function databaseUrl(dir) {
  if ((process.env.TESSERA_TEST_BACKEND || 'sqlite') !== 'postgres') {
    return `sqlite://${dir}/tessera.db`;
  }
  const base = process.env.TESSERA_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';
  const name = `tessera_browser_${randomBytes(6).toString('hex')}`;
  execFileSync('psql', [base, '-qAtc', `CREATE DATABASE ${name}`]);
  return base.replace(/\/[^/]*$/, `/${name}`);
}

export async function startTessera(extraEnv = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-browser-'));
  const port = await freePort();
  // A host name, not an IP: passkeys need one, and cookies behave as in production.
  const base = `http://localhost:${port}`;
  const env = {
    PATH: process.env.PATH,
    TESSERA_LISTEN: `127.0.0.1:${port}`,
    TESSERA_ISSUER: base,
    TESSERA_DATA_DIR: dir,
    TESSERA_DATABASE_URL: databaseUrl(dir),
    TESSERA_MASTER_KEY: randomBytes(32).toString('base64url'),
    TESSERA_LOG: 'warn',
    // PostgreSQL refuses to start without a mail transport unless mail-to-log is chosen; tests
    // that read mail set TESSERA_SMTP_URL to a sink (extraEnv).
    ...(process.env.TESSERA_TEST_BACKEND === 'postgres' ? { TESSERA_MAIL_TO_LOG: 'true' } : {}),
    ...(process.env.TESSERA_TEST_BACKEND === 'postgres' && process.env.TESSERA_TEST_REDIS_URL
      ? {
          TESSERA_REDIS_URL: process.env.TESSERA_TEST_REDIS_URL,
          // Counters and channels apart from every other run sharing this Redis.
          TESSERA_REDIS_PREFIX: `tessera-browser-${randomBytes(6).toString('hex')}`,
        }
      : {}),
    ...extraEnv,
  };
  const log = fs.openSync(path.join(dir, 'server.log'), 'a');
  const child = spawn(tesseraBin(), ['serve'], { env, stdio: ['ignore', log, log] });
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      throw new Error(`tessera did not start:\n${fs.readFileSync(path.join(dir, 'server.log'), 'utf8')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const cli = (args, input) =>
    execFileSync(tesseraBin(), args, { env, input: input ?? '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  return {
    base,
    env,
    cli,
    addUser(email, password, name = 'Test User') {
      return cli(['user', 'add', '--email', email, '--name', name, '--password-stdin'], password).trim();
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/// A browser context that records Content-Security-Policy violations.
export async function newContext(browser, userAgent) {
  const context = await browser.newContext(userAgent ? { userAgent } : {});
  context.cspViolations = [];
  context.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) context.cspViolations.push(msg.text());
  });
  return context;
}

export async function signIn(page, base, email, password) {
  await page.goto(`${base}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(`${base}/account`);
}

/// Undoes quoted-printable (RFC 2045 §6.7): soft line breaks vanish, `=XX` is a byte.
export function decodeQuotedPrintable(text) {
  const bytes = [];
  const src = Buffer.from(text.replace(/=\r?\n/g, ''), 'latin1');
  for (let i = 0; i < src.length; i++) {
    const hex = src[i] === 0x3d ? src.subarray(i + 1, i + 3).toString('latin1') : '';
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(src[i]);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function parseMail(file, raw) {
  const text = raw.toString('latin1').replace(/\r\n/g, '\n');
  const split = text.indexOf('\n\n');
  if (split < 0) throw new Error(`the mail ${file} has no blank line after its headers`);
  const headers = {};
  let last = null;
  for (const line of text.slice(0, split).split('\n')) {
    if (/^[ \t]/.test(line) && last) {
      headers[last] += ` ${line.trim()}`;
    } else {
      const colon = line.indexOf(':');
      if (colon > 0) {
        last = line.slice(0, colon).trim().toLowerCase();
        headers[last] = line.slice(colon + 1).trim();
      }
    }
  }
  const rawBody = text.slice(split + 2);
  const encoding = (headers['content-transfer-encoding'] || '').toLowerCase();
  let body;
  if (encoding === 'quoted-printable') body = decodeQuotedPrintable(rawBody);
  else if (encoding === 'base64') body = Buffer.from(rawBody.replace(/\s+/g, ''), 'base64').toString('utf8');
  else body = Buffer.from(rawBody, 'latin1').toString('utf8');
  return {
    file,
    to: headers['x-sink-rcpt'] || '',
    subject: headers.subject || '',
    body,
    /// The one link in the body that starts with `prefix`.
    link(prefix) {
      const links = body.split(/\s+/).filter((word) => word.startsWith(prefix));
      if (links.length !== 1) {
        throw new Error(`the mail "${this.subject}" should carry one link starting with ${prefix}:\n${body}`);
      }
      return links[0];
    },
  };
}

/// Starts tests/support/smtp_sink.py on a free port; Tessera gets TESSERA_SMTP_URL=sink.smtpUrl.
export async function startMailSink() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-mail-'));
  const script = path.join(here, '..', 'support', 'smtp_sink.py');
  const child = spawn('python3', [script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error('the SMTP sink did not print its port within 10 s')), 10000);
    child.stdout.on('data', (chunk) => {
      seen += chunk;
      const match = seen.match(/^PORT (\d+)\r?\n/);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the SMTP sink exited (${code}) before printing its port`));
    });
  });
  const taken = new Set();
  const addressedTo = (mail, to) => mail.to.split(',').some((r) => r.trim().toLowerCase() === to.toLowerCase());
  const received = () =>
    fs
      .readdirSync(dir)
      .filter((name) => name.endsWith('.eml'))
      .sort()
      .map((name) => parseMail(name, fs.readFileSync(path.join(dir, name))));
  return {
    port,
    smtpUrl: `smtp://127.0.0.1:${port}`,
    received,
    receivedBy: (to) => received().filter((m) => addressedTo(m, to)),
    /// Waits (up to 5 s) for the oldest mail to `to` that no earlier call returned.
    async nextMailTo(to, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const mail = received().find((m) => addressedTo(m, to) && !taken.has(m.file));
        if (mail) {
          taken.add(mail.file);
          return mail;
        }
        if (Date.now() > deadline) {
          const all = received().map((m) => `${m.to}: ${m.subject}`);
          throw new Error(`no new mail to ${to} within ${timeoutMs} ms; the sink holds ${JSON.stringify(all)}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/// RFC 6238 TOTP (SHA-1, 6 digits, 30-second steps) of a base32 key, `steps` steps from now.
export function totp(base32Key, steps = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32Key.replace(/[\s=]/g, '').toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${base32Key}`);
    bits += v.toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + steps));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

async function pressEnterOn(page, name) {
  const button = page.getByRole('button', { name, exact: true });
  await button.focus();
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
}

/// The first sign-in of an admin made with the CLI (`--role admin`, no second factor yet): the
/// account asks for an authenticator app (admins must use one), whose key is read from the page
/// and whose codes are computed here; then the console's re-authentication (password, then the
/// next code: the one typed is spent) if it asks. Ends on the console's overview. Returns the key.
export async function signInAdmin(page, base, email, password) {
  await page.goto(`${base}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(`${base}/account/security`);
  await pressEnterOn(page, 'Add an authenticator app');
  const key = (await page.locator('#totp-key').innerText()).trim();
  await page.getByLabel('Code from the app').fill(totp(key));
  await pressEnterOn(page, 'Confirm');
  await page.getByRole('heading', { name: 'Your recovery codes' }).waitFor();
  await page.goto(`${base}/admin`);
  if (await page.getByRole('heading', { name: "Confirm it's you" }).isVisible()) {
    await page.getByLabel('Password').fill(password);
    await pressEnterOn(page, 'Continue');
    await page.getByLabel(/Code from your authenticator app/).fill(totp(key, 1));
    await pressEnterOn(page, 'Verify');
  }
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  return key;
}
