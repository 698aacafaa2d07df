// Tessera's metadata and this client's configuration, discovered once (openid-client v6).
import * as client from 'openid-client';
import { createRemoteJWKSet } from 'jose';
import { settings } from './config';

const g = globalThis as unknown as {
  __erpOidc?: Promise<client.Configuration>;
  __erpJwks?: ReturnType<typeof createRemoteJWKSet>;
};

export function oidc(): Promise<client.Configuration> {
  if (!g.__erpOidc) {
    const s = settings();
    const insecure = s.issuer.startsWith('http://'); // development: Tessera on localhost
    g.__erpOidc = client
      .discovery(
        new URL(s.issuer),
        s.clientId,
        s.clientSecret,
        client.ClientSecretBasic(s.clientSecret),
        insecure ? { execute: [client.allowInsecureRequests] } : undefined,
      )
      .then((config) => {
        config.timeout = 5; // seconds per request to Tessera; a refresh is retried on timeout
        return config;
      })
      .catch((e) => {
        g.__erpOidc = undefined; // try again on the next request
        throw e;
      });
  }
  return g.__erpOidc;
}

/// Tessera's JWKS for logout tokens (jose caches it and refetches on an unknown kid).
export async function jwks() {
  if (!g.__erpJwks) {
    const meta = (await oidc()).serverMetadata();
    if (!meta.jwks_uri) throw new Error('Tessera names no jwks_uri');
    g.__erpJwks = createRemoteJWKSet(new URL(meta.jwks_uri), { cooldownDuration: 10_000 });
  }
  return g.__erpJwks;
}

/// Only a local path: never an open redirect.
export function safeReturnTo(value: string | null): string {
  return value && /^\/(?![/\\])[\x21-\x7e]*$/.test(value) ? value : '/';
}
