// Starts the two example apps next to a Tessera started by tests/browser/harness.mjs.
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export { freePort } from '../../tests/browser/harness.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
export const examples = path.join(here, '..');

async function waitFor(url, child, logFile, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { redirect: 'manual' });
      if (res.status < 500) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      throw new Error(`${url} did not come up:\n${fs.readFileSync(logFile, 'utf8')}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function startProcess(name, args, cwd, env, dir) {
  const logFile = path.join(dir, `${name}.log`);
  const log = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, args, {
    cwd,
    env: { PATH: process.env.PATH, NEXT_TELEMETRY_DISABLED: '1', ...env },
    stdio: ['ignore', log, log],
  });
  return {
    child,
    logFile,
    log: () => fs.readFileSync(logFile, 'utf8'),
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      }
    },
  };
}

/// `next build` once (CI runs it before the test; a developer's first run does it here).
export function ensureBuilt() {
  if (!fs.existsSync(path.join(examples, 'erp-api', 'dist', 'src', 'server.js'))) {
    execFileSync('npm', ['run', 'build', '-w', 'erp-api'], { cwd: examples, stdio: 'inherit' });
  }
  if (!fs.existsSync(path.join(examples, 'erp-web', '.next', 'BUILD_ID'))) {
    execFileSync('npm', ['run', 'build', '-w', 'erp-web'], { cwd: examples, stdio: 'inherit' });
  }
}

export async function startApi(tessera, { clientId, clientSecret, port, dir }) {
  const p = startProcess(
    'erp-api',
    [path.join(examples, 'erp-api', 'dist', 'src', 'server.js')],
    path.join(examples, 'erp-api'),
    {
      TESSERA_ISSUER: tessera.base,
      API_AUDIENCE: 'https://erp-api.example',
      PORT: String(port),
      // 20 s tokens + 10 s leeway; the feed's own `retention` wins when longer.
      REVOCATION_RETENTION_SECONDS: '30',
      ...(clientId ? { API_CLIENT_ID: clientId, API_CLIENT_SECRET: clientSecret } : {}),
    },
    dir,
  );
  await waitFor(`http://127.0.0.1:${port}/healthz`, p.child, p.logFile);
  return { ...p, url: `http://127.0.0.1:${port}` };
}

export async function startWeb(tessera, { clientId, clientSecret, port, apiUrl, dir }) {
  const next = path.join(examples, 'node_modules', 'next', 'dist', 'bin', 'next');
  const appUrl = `http://localhost:${port}`;
  const p = startProcess(
    'erp-web',
    [next, 'start', '-p', String(port), '-H', '127.0.0.1'],
    path.join(examples, 'erp-web'),
    {
      TESSERA_ISSUER: tessera.base,
      WEB_CLIENT_ID: clientId,
      WEB_CLIENT_SECRET: clientSecret,
      APP_URL: appUrl,
      API_URL: apiUrl,
      SESSION_SECRET: randomBytes(32).toString('base64url'),
      ERP_EXPOSE_STATS: '1',
    },
    dir,
  );
  await waitFor(`${appUrl}/signed-out`, p.child, p.logFile);
  return { ...p, url: appUrl };
}

export function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

/// Sum of a Prometheus counter's samples (0 when absent).
export function metric(text, name) {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+)$/);
    if (m && m[1] === name) total += Number(m[3]);
  }
  return total;
}

export function jwtPart(token, i) {
  return JSON.parse(Buffer.from(token.split('.')[i], 'base64url').toString('utf8'));
}

