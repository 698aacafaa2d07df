// The console's Users page over 10,000 users, as the admin's browser gets it: a real Tessera
// (build it with `cargo build --release --bin tessera` and point TESSERA_BIN at it), 10,000
// users inserted by SQL, an admin signed in through Chromium (password + TOTP), then N timed
// GETs of the page with the admin's cookies from this process (localhost, one at a time). The
// time is the whole request as the client sees it: gate, engine call, template, HTTP.
//
//   TESSERA_BIN=$CARGO_TARGET_DIR/release/tessera node bench-user-list-page.mjs [runs]
//   TESSERA_TEST_BACKEND=postgres TESSERA_TEST_REDIS_URL=redis://127.0.0.1:6379 TESSERA_BIN=… node bench-user-list-page.mjs
//
// Not a test (node --test does not pick it up): a measurement for BENCHMARKS.md.
import { execFileSync } from 'node:child_process';
import { launchBrowser, newContext, signInAdmin, startTessera } from './harness.mjs';

const USERS = 10_000;
const RUNS = Number(process.argv[2] || 200);
const PASSWORD = 'a calm and long passphrase';

function seed(databaseUrl) {
  // Created three per second (pages cross equal sort keys), every fiftieth disabled.
  const sql = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${USERS})
    INSERT INTO users (id, email, name, roles, password_hash, disabled, created_at, updated_at)
    SELECT 'bench-' || i, 'user' || i || '@bench.example', 'Bench User ' || i, '[]', '!unusable',
           CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END, 1700000000 + i / 3, 1700000000 + i / 3 FROM n`;
  if (databaseUrl.startsWith('sqlite://')) {
    execFileSync('sqlite3', [databaseUrl.slice('sqlite://'.length), `${sql}; ANALYZE;`]);
  } else {
    execFileSync('psql', [databaseUrl, '-qAtc', sql]);
    execFileSync('psql', [databaseUrl, '-qAtc', 'ANALYZE']);
  }
}

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return `median ${at(0.5).toFixed(2)} ms, p90 ${at(0.9).toFixed(2)} ms, p99 ${at(0.99).toFixed(2)} ms, max ${s[s.length - 1].toFixed(2)} ms`;
}

const app = await startTessera();
const browser = await launchBrowser();
try {
  app.cli(['user', 'add', '--email', 'root@example.com', '--role', 'admin', '--password-stdin'], PASSWORD);
  seed(app.env.TESSERA_DATABASE_URL);
  const context = await newContext(browser);
  const page = await context.newPage();
  await signInAdmin(page, app.base, 'root@example.com', PASSWORD);
  const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  for (const [label, path] of [
    ['first page, newest created', '/admin/users'],
    ['first page, last sign-in', '/admin/users?sort=last_sign_in'],
    ['search "er12" (substring)', '/admin/users?q=er12'],
  ]) {
    const get = async () => {
      const t = performance.now();
      const res = await fetch(`${app.base}${path}`, { headers: { cookie } });
      const html = await res.text();
      const ms = performance.now() - t;
      if (res.status !== 200) throw new Error(`${path}: ${res.status}\n${html.slice(0, 500)}`);
      return { ms, rows: html.split('<th scope="row">').length - 1 };
    };
    for (let i = 0; i < 10; i++) await get();
    const times = [];
    let rows = 0;
    for (let i = 0; i < RUNS; i++) {
      const r = await get();
      times.push(r.ms);
      rows = r.rows;
    }
    console.log(`${process.env.TESSERA_TEST_BACKEND || 'sqlite'} | ${label} | ${rows} rows | ${RUNS} runs | ${stats(times)}`);
  }
  await context.close();
} finally {
  await browser.close();
  await app.stop();
}
