// Tessera's signing keys, cached as its JWKS answer's Cache-Control says, refetched once (with a
// cooldown) when a token names a key we do not hold: a scheduled key rotation never fails a request,
// and a flood of tokens with made-up `kid`s costs at most one fetch per cooldown.
import { importJWK, type JWK, type JWSHeaderParameters } from 'jose';

type Key = Awaited<ReturnType<typeof importJWK>>;

export type Fetch = (url: string, init?: RequestInit) => Promise<Response>;

export interface JwksOptions {
  jwksUri: string;
  /// Injected in tests; the global fetch otherwise.
  fetch?: Fetch;
  /// Milliseconds since the epoch; injected in tests.
  now?: () => number;
  /// The least time between two fetches caused by an unknown `kid` (ms).
  cooldownMs?: number;
  /// Used when the answer carries no usable max-age (ms).
  defaultMaxAgeMs?: number;
  /// Never trust a cached set longer than this, whatever Cache-Control says (ms).
  maxMaxAgeMs?: number;
}

/// `max-age` (seconds) of a Cache-Control header, or undefined; `no-store`/`no-cache` mean 0.
export function maxAgeSeconds(cacheControl: string | null): number | undefined {
  if (!cacheControl) return undefined;
  const directives = cacheControl.toLowerCase().split(',').map((d) => d.trim());
  if (directives.includes('no-store') || directives.includes('no-cache')) return 0;
  for (const d of directives) {
    const m = /^max-age\s*=\s*"?(\d+)"?$/.exec(d);
    if (m?.[1]) return Number(m[1]);
  }
  return undefined;
}

export class JwksCache {
  private keys = new Map<string, { jwk: JWK; key?: Key }>();
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private freshUntil = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | undefined;
  private readonly fetchFn: Fetch;
  private readonly now: () => number;
  private readonly cooldownMs: number;
  private readonly defaultMaxAgeMs: number;
  private readonly maxMaxAgeMs: number;
  /// How many times the JWKS was fetched (for tests and metrics).
  fetches = 0;

  constructor(private readonly options: JwksOptions) {
    this.fetchFn = options.fetch ?? ((url, init) => fetch(url, init));
    this.now = options.now ?? Date.now;
    this.cooldownMs = options.cooldownMs ?? 10_000;
    this.defaultMaxAgeMs = options.defaultMaxAgeMs ?? 60_000;
    this.maxMaxAgeMs = options.maxMaxAgeMs ?? 3_600_000;
  }

  /// The key a JWS header names; usable as jose's key resolver.
  getKey = async (header: JWSHeaderParameters): Promise<Key> => {
    const kid = header.kid;
    if (!kid) throw new JwksError('the token names no key (kid)');
    if (this.now() >= this.freshUntil) {
      await this.refresh(); // expired: refetch (a failed refetch keeps the old keys, below)
    } else if (!this.keys.has(kid)) {
      if (this.inFlight) await this.inFlight; // a fetch under way may bring it
      else if (this.now() - this.fetchedAt >= this.cooldownMs) await this.refresh(); // perhaps a new key; once per cooldown
    }
    const entry = this.keys.get(kid);
    if (!entry) throw new JwksError(`unknown signing key ${kid}`);
    if (header.alg && entry.jwk.alg && header.alg !== entry.jwk.alg) {
      throw new JwksError('the token\'s alg differs from its key\'s');
    }
    entry.key ??= await importJWK(entry.jwk, header.alg ?? entry.jwk.alg);
    return entry.key;
  };

  /// Fetches the set now; concurrent callers share one request.
  refresh(): Promise<void> {
    this.inFlight ??= this.load().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async load(): Promise<void> {
    this.fetches += 1;
    this.fetchedAt = this.now();
    let res: Response;
    try {
      res = await this.fetchFn(this.options.jwksUri, { headers: { accept: 'application/json' } });
    } catch (e) {
      // Keep serving the keys we have; try again after the cooldown.
      this.freshUntil = Math.max(this.freshUntil, this.now() + this.cooldownMs);
      if (this.keys.size === 0) throw new JwksError(`JWKS unreachable: ${(e as Error).message}`);
      return;
    }
    if (!res.ok) {
      this.freshUntil = Math.max(this.freshUntil, this.now() + this.cooldownMs);
      if (this.keys.size === 0) throw new JwksError(`JWKS answered ${res.status}`);
      return;
    }
    const body = (await res.json()) as { keys?: JWK[] };
    const keys = new Map<string, { jwk: JWK; key?: Key }>();
    for (const jwk of body.keys ?? []) {
      if (typeof jwk.kid !== 'string' || (jwk.use && jwk.use !== 'sig')) continue;
      const old = this.keys.get(jwk.kid);
      keys.set(jwk.kid, old && JSON.stringify(old.jwk) === JSON.stringify(jwk) ? old : { jwk });
    }
    this.keys = keys;
    const age = maxAgeSeconds(res.headers.get('cache-control'));
    const ms = age === undefined ? this.defaultMaxAgeMs : Math.min(age * 1000, this.maxMaxAgeMs);
    this.freshUntil = this.now() + Math.max(ms, 1000); // never a fetch per request
  }
}

export class JwksError extends Error {}
