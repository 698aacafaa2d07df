// Settings from the environment (see examples/README.md).
import { randomBytes } from 'node:crypto';

function required(name: string, fallback?: string): string {
  const v = process.env[name] ?? fallback;
  if (!v) throw new Error(`erp-web: set ${name}`);
  return v;
}

function sessionKey(): Uint8Array {
  const text = process.env.SESSION_SECRET;
  if (!text) {
    // Sessions live in this process's memory, so a key of this process's own is enough: a
    // restart forgets the sessions and the key together.
    return new Uint8Array(randomBytes(32));
  }
  const key = Buffer.from(text, 'base64url');
  if (key.length !== 32) throw new Error('erp-web: SESSION_SECRET must be 32 bytes, base64url');
  return new Uint8Array(key);
}

type Settings = {
  issuer: string;
  clientId: string;
  clientSecret: string;
  appUrl: string;
  apiUrl: string;
  scope: string;
  sessionKey: Uint8Array;
  secureCookies: boolean;
};

const g = globalThis as unknown as { __erpSettings?: Settings };

export function settings(): Settings {
  if (g.__erpSettings) return g.__erpSettings;
  const appUrl = required('APP_URL', 'http://localhost:3000').replace(/\/$/, '');
  g.__erpSettings = {
    issuer: required('TESSERA_ISSUER', 'http://localhost:8080'),
    clientId: required('WEB_CLIENT_ID', 'erp-web'),
    clientSecret: required('WEB_CLIENT_SECRET'),
    appUrl,
    apiUrl: required('API_URL', 'http://localhost:4000').replace(/\/$/, ''),
    scope: process.env.WEB_SCOPE ?? 'openid profile offline_access erp:read',
    sessionKey: sessionKey(),
    secureCookies: appUrl.startsWith('https://'),
  };
  return g.__erpSettings;
}
