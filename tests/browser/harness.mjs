// Starts a real Tessera process for browser tests and drives its CLI, like the Rust suite does.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
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

async function freePort() {
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
    ...(process.env.TESSERA_TEST_BACKEND === 'postgres' && process.env.TESSERA_TEST_REDIS_URL
      ? { TESSERA_REDIS_URL: process.env.TESSERA_TEST_REDIS_URL }
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
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/account`);
}
