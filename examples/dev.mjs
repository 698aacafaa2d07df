// `npm start` in examples/: registers the two example clients and a demo user in the Tessera that
// `cargo run` started (same data folder), then runs erp-api on :4000 and erp-web on :3000.
// Secrets it makes are kept in examples/.dev-secrets.json (git-ignored) for the next start.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);
const repo = path.join(here, '..');
const issuer = process.env.TESSERA_ISSUER || 'http://localhost:8080';
const webPort = Number(process.env.WEB_PORT || 3000);
const apiPort = Number(process.env.API_PORT || 4000);
const webUrl = `http://localhost:${webPort}`;
const secretsFile = path.join(here, '.dev-secrets.json');

// The CLI must see the server's database: run it from the repository root, like `cargo run`.
function tessera(args, input = '') {
  const [cmd, pre] = process.env.TESSERA_BIN
    ? [process.env.TESSERA_BIN, []]
    : ['cargo', ['run', '-q', '--bin', 'tessera', '--']];
  return execFileSync(cmd, [...pre, ...args], { cwd: repo, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}
const exists = (args) => {
  try {
    tessera(args);
    return true;
  } catch {
    return false;
  }
};

try {
  const res = await fetch(`${issuer}/.well-known/openid-configuration`);
  if (!res.ok) throw new Error(String(res.status));
} catch {
  console.error(`Tessera does not answer at ${issuer}: start it first with \`cargo run\` in ${repo}`);
  process.exit(1);
}

const secrets = fs.existsSync(secretsFile) ? JSON.parse(fs.readFileSync(secretsFile, 'utf8')) : {};
const help = tessera(['client', 'add', '--help']);
const backchannel = help.includes('--backchannel-logout-uri');
const feed = (await fetch(`${issuer}/ssf/events`)).status === 401;

function client(id, args) {
  if (exists(['client', 'show', id])) {
    if (!secrets[id]) {
      // Registered before, secret forgotten: a new one, the old one ends now.
      secrets[id] = /client_secret: (\S+)/.exec(tessera(['client', 'rotate-secret', id, '--overlap', '0s']))?.[1];
    }
    return;
  }
  secrets[id] = randomBytes(32).toString('base64url');
  tessera(['client', 'add', '--id', id, '--secret-stdin', ...args], secrets[id]);
  console.log(`registered client ${id}`);
}

client('erp-web', [
  '--first-party',
  '--redirect-uri', `${webUrl}/callback`,
  '--post-logout-redirect-uri', `${webUrl}/signed-out`,
  '--scope', 'openid', '--scope', 'profile', '--scope', 'offline_access', '--scope', 'erp:read',
  '--audience', 'https://erp-api.example',
  ...(backchannel ? ['--backchannel-logout-uri', `${webUrl}/api/backchannel-logout`] : []),
]);
if (feed) client('erp-api', ['--grant', 'client_credentials', '--scope', 'tessera:revocations']);

const demo = 'demo@example.com';
if (!exists(['user', 'show', demo])) {
  secrets.demoPassword = randomBytes(12).toString('base64url');
  tessera(['user', 'add', '--email', demo, '--name', 'Dana Demo', '--role', 'staff', '--role', 'finance', '--password-stdin'], secrets.demoPassword);
  console.log(`created user ${demo}`);
}
fs.writeFileSync(secretsFile, JSON.stringify(secrets, null, 2), { mode: 0o600 });

if (!fs.existsSync(path.join(here, 'erp-api', 'dist', 'src', 'server.js'))) {
  execFileSync('npm', ['run', 'build', '-w', 'erp-api'], { cwd: here, stdio: 'inherit' });
}
const children = [
  spawn(process.execPath, ['erp-api/dist/src/server.js'], {
    cwd: here,
    stdio: 'inherit',
    env: {
      ...process.env,
      TESSERA_ISSUER: issuer,
      PORT: String(apiPort),
      ...(feed ? { API_CLIENT_ID: 'erp-api', API_CLIENT_SECRET: secrets['erp-api'] } : {}),
    },
  }),
  spawn(process.execPath, [path.join(here, 'node_modules', 'next', 'dist', 'bin', 'next'), 'dev', '-p', String(webPort)], {
    cwd: path.join(here, 'erp-web'),
    stdio: 'inherit',
    env: {
      ...process.env,
      NEXT_TELEMETRY_DISABLED: '1',
      TESSERA_ISSUER: issuer,
      WEB_CLIENT_ID: 'erp-web',
      WEB_CLIENT_SECRET: secrets['erp-web'],
      APP_URL: webUrl,
      API_URL: `http://127.0.0.1:${apiPort}`,
    },
  }),
];
console.log(
  `\nERP front end: ${webUrl}  (sign in as ${demo}${secrets.demoPassword ? ` / ${secrets.demoPassword}` : ''}; ` +
    `the password is also in examples/.dev-secrets.json)\nERP API:       http://127.0.0.1:${apiPort}\n` +
    (backchannel ? '' : 'This Tessera has no back-channel logout yet: revocations reach the app at its next refresh.\n') +
    (feed ? '' : 'This Tessera has no revocation feed yet: the API verifies signatures and expiry only.\n'),
);
const stop = () => children.forEach((c) => c.kill('SIGTERM'));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
children.forEach((c) => c.on('exit', stop));
