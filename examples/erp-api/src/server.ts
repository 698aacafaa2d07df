// Starts the ERP API: discovery, JWKS cache, revocation feed, HTTP.
import { FeedFollower } from './feed.js';
import { JwksCache } from './jwks.js';
import { RevocationStore } from './revocations.js';
import { createVerifier } from './verify.js';
import { createApp } from './app.js';

function env(name: string, fallback?: string): string {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') {
    console.error(`erp-api: set ${name}`);
    process.exit(2);
  }
  return v;
}

const issuer = env('TESSERA_ISSUER', 'http://localhost:8080');
const audience = env('API_AUDIENCE', 'https://erp-api.example');
const port = Number(env('PORT', '4000'));
// Access-token lifetime + leeway: how long a revocation must be remembered (the feed may say more).
const retentionMs = Number(env('REVOCATION_RETENTION_SECONDS', '660')) * 1000;

const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
  jwks_uri: string;
  token_endpoint: string;
  issuer: string;
};
if (discovery.issuer !== issuer) {
  console.error(`erp-api: discovery names issuer ${discovery.issuer}, expected ${issuer}`);
  process.exit(2);
}
const jwks = new JwksCache({ jwksUri: discovery.jwks_uri });
const revocations = new RevocationStore(retentionMs);
const verify = createVerifier({ issuer, audience, jwks, revocations, leewaySeconds: 5 });

let feed: FeedFollower | undefined;
if (process.env.API_CLIENT_ID) {
  feed = new FeedFollower({
    issuer,
    tokenEndpoint: discovery.token_endpoint,
    eventsEndpoint: `${issuer}/ssf/events`,
    clientId: env('API_CLIENT_ID'),
    clientSecret: env('API_CLIENT_SECRET'),
    jwks,
    revocations,
    log: (m) => console.warn(m),
  });
  feed.start();
} else {
  console.warn('erp-api: API_CLIENT_ID unset: not following the revocation feed');
}

const server = createApp({ verify, feed }).listen(port, process.env.HOST ?? '127.0.0.1', () => {
  console.log(`erp-api listening on http://${process.env.HOST ?? '127.0.0.1'}:${port}`);
});
const stop = () => {
  feed?.stop();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
