// Follows Tessera's revocation feed (GET {issuer}/ssf/events, SSF/CAEP session-revoked SETs):
// a client_credentials token with scope tessera:revocations, a poll every second at the tail, and
// immediately again while the feed says more is available.
import { jwtVerify } from 'jose';
import type { Fetch, JwksCache } from './jwks.js';
import { maxAgeSeconds } from './jwks.js';
import type { RevocationStore } from './revocations.js';
import { ALLOWED_ALGS } from './verify.js';

export interface FeedOptions {
  issuer: string;
  tokenEndpoint: string;
  eventsEndpoint: string;
  clientId: string;
  clientSecret: string;
  jwks: JwksCache;
  revocations: RevocationStore;
  fetch?: Fetch;
  now?: () => number;
  /// Pause at the tail when the answer names no max-age (ms).
  intervalMs?: number;
  log?: (msg: string) => void;
}

interface FeedPage {
  sets?: Record<string, string>;
  moreAvailable?: boolean;
  cursor?: string;
  retention?: number;
}

export class FeedFollower {
  private accessToken: string | undefined;
  private cursor: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly fetchFn: Fetch;
  private readonly now: () => number;
  /// When the feed last answered 200 (ms), for health checks.
  lastSuccessAt = 0;
  /// Whether the follower has read the feed to its tail at least once.
  caughtUp = false;
  applied = 0;
  duplicates = 0;
  rejected = 0;
  private failures = new Map<string, number>();

  constructor(private readonly o: FeedOptions) {
    this.fetchFn = o.fetch ?? ((url, init) => fetch(url, init));
    this.now = o.now ?? Date.now;
  }

  start() {
    const loop = async () => {
      if (this.stopped) return;
      let delay = this.o.intervalMs ?? 1000;
      try {
        delay = await this.pollOnce();
      } catch (e) {
        this.o.log?.(`revocation feed: ${(e as Error).message}`);
        delay = Math.max(delay, 1000);
      }
      this.o.revocations.prune();
      if (!this.stopped) this.timer = setTimeout(loop, delay);
    };
    void loop();
  }

  stop() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private async token(): Promise<string> {
    if (this.accessToken) return this.accessToken;
    const basic = Buffer.from(
      `${encodeURIComponent(this.o.clientId)}:${encodeURIComponent(this.o.clientSecret)}`,
    ).toString('base64');
    const res = await this.fetchFn(this.o.tokenEndpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${basic}`,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'tessera:revocations' }),
    });
    if (!res.ok) throw new Error(`client_credentials answered ${res.status}`);
    const body = (await res.json()) as { access_token?: string };
    if (!body.access_token) throw new Error('client_credentials gave no access_token');
    this.accessToken = body.access_token;
    return this.accessToken;
  }

  /// One request (plus one retry with a new token on 401); returns the pause before the next (ms).
  async pollOnce(): Promise<number> {
    let res: Response | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      const url = new URL(this.o.eventsEndpoint);
      url.searchParams.set('limit', '500');
      if (this.cursor) url.searchParams.set('cursor', this.cursor);
      res = await this.fetchFn(url.toString(), {
        headers: { authorization: `Bearer ${await this.token()}`, accept: 'application/json' },
      });
      if (res.status !== 401) break;
      this.accessToken = undefined; // expired or revoked: get a new one once
    }
    if (res?.status === 400 && this.cursor) {
      // A cursor the feed no longer takes (e.g. we were away longer than its retention): start
      // again from the oldest retained event; what we already have comes again and is deduplicated.
      this.cursor = undefined;
      return 0;
    }
    if (!res || !res.ok) throw new Error(`the feed answered ${res?.status}`);
    const page = (await res.json()) as FeedPage;
    if (typeof page.retention === 'number') this.o.revocations.setRetention(page.retention * 1000);
    let retry = false;
    for (const [jti, set] of Object.entries(page.sets ?? {})) {
      try {
        const { payload } = await jwtVerify(set, this.o.jwks.getKey, {
          issuer: this.o.issuer,
          audience: this.o.clientId,
          typ: 'secevent+jwt',
          algorithms: ALLOWED_ALGS,
        });
        const r = this.o.revocations.apply(payload);
        if (r === 'applied') this.applied += 1;
        else if (r === 'duplicate') this.duplicates += 1;
        this.failures.delete(jti);
      } catch (e) {
        // Perhaps a key we cannot fetch yet: read the page again rather than lose an event,
        // but a SET that never verifies must not stall the feed for ever.
        const n = (this.failures.get(jti) ?? 0) + 1;
        this.failures.set(jti, n);
        this.o.log?.(`revocation feed: SET ${jti} refused (${n}): ${(e as Error).message}`);
        if (n < 3) retry = true;
        else {
          this.rejected += 1;
          this.failures.delete(jti);
        }
      }
    }
    if (retry) return 1000;
    if (typeof page.cursor === 'string') this.cursor = page.cursor;
    this.lastSuccessAt = this.now();
    if (page.moreAvailable) return 0;
    this.caughtUp = true;
    const age = maxAgeSeconds(res.headers.get('cache-control'));
    return Math.min(Math.max((age ?? 1) * 1000, 250), 5000);
  }
}
