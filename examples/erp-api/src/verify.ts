// Offline verification of Tessera's RFC 9068 access tokens with jose.
import { errors, jwtVerify, type JWTPayload } from 'jose';
import type { JwksCache } from './jwks.js';
import type { RevocationStore } from './revocations.js';

/// Asymmetric algorithms only: never `none`, never an HMAC keyed by a public key.
export const ALLOWED_ALGS = ['ES256', 'EdDSA', 'RS256'];

export interface AccessToken extends JWTPayload {
  sub: string;
  client_id?: string;
  scope?: string;
  sid?: string;
  roles?: string[];
  acr?: string;
  amr?: string[];
}

export interface VerifierOptions {
  issuer: string;
  audience: string;
  jwks: JwksCache;
  revocations: RevocationStore;
  /// Seconds of clock skew accepted on exp/nbf/iat.
  leewaySeconds?: number;
  algorithms?: string[];
  now?: () => number;
}

export class TokenError extends Error {}

export function createVerifier(o: VerifierOptions) {
  const leeway = o.leewaySeconds ?? 5;
  const now = o.now ?? Date.now;
  return async function verify(token: string): Promise<AccessToken> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, o.jwks.getKey, {
        issuer: o.issuer,
        audience: o.audience,
        typ: 'at+jwt',
        algorithms: o.algorithms ?? ALLOWED_ALGS,
        clockTolerance: leeway,
        currentDate: new Date(now()),
        requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      }));
    } catch (e) {
      if (e instanceof errors.JOSEError || e instanceof Error) throw new TokenError(e.message);
      throw new TokenError('invalid token');
    }
    const reason = o.revocations.revoked(payload);
    if (reason) throw new TokenError(reason);
    return payload as AccessToken;
  };
}

export type Verify = ReturnType<typeof createVerifier>;
