// What an offline verifier keeps from Tessera's revocation feed (CAEP session-revoked SETs):
// revoked session ids, and per user the latest "every token issued at or before T" mark. Each entry
// lives for the access-token lifetime plus leeway after its event: by then every token it could
// refuse has expired anyway.
export const SESSION_REVOKED = 'https://schemas.openid.net/secevent/caep/event-type/session-revoked';
/// Tessera's own event for one access token revoked (RFC 7009): body `{event_timestamp, jti, exp}`.
export const TOKEN_REVOKED = 'urn:tessera:secevent:access-token-revoked';

export interface SetClaims {
  jti?: unknown;
  sub_id?: unknown;
  events?: unknown;
}

export type ApplyResult = 'applied' | 'duplicate' | 'ignored';

export interface TokenFacts {
  sid?: unknown;
  sub?: unknown;
  iat?: unknown;
}

export class RevocationStore {
  private sessions = new Map<string, number>(); // sid -> keep until (ms)
  private users = new Map<string, { before: number; until: number }>(); // sub -> {T (s), keep until (ms)}
  private tokens = new Map<string, number>(); // access token jti -> keep until (ms)
  private seen = new Map<string, number>(); // SET jti -> keep until (ms)

  /// `retentionMs`: how long after its event an entry must be kept (token lifetime + leeway).
  constructor(
    private retentionMs: number,
    private readonly now: () => number = Date.now,
    /// Clock skew accepted by the verifier: a revoked token is remembered this long past its exp.
    private readonly leewayMs = 10_000,
  ) {}

  /// The feed may announce its retention; never keep less than we were told to.
  setRetention(ms: number) {
    if (Number.isFinite(ms) && ms > this.retentionMs) this.retentionMs = ms;
  }

  /// Records one verified SET's claims. The same SET may come twice (deduplicated by `jti`).
  apply(claims: SetClaims): ApplyResult {
    const jti = typeof claims.jti === 'string' ? claims.jti : undefined;
    if (!jti) return 'ignored';
    if (this.seen.has(jti)) return 'duplicate';
    const events = (claims.events ?? {}) as Record<string, { event_timestamp?: unknown; jti?: unknown; exp?: unknown } | undefined>;
    const revokedToken = events[TOKEN_REVOKED];
    if (revokedToken && typeof revokedToken.jti === 'string' && typeof revokedToken.exp === 'number') {
      const until = revokedToken.exp * 1000 + this.leewayMs;
      if (until <= this.now()) return 'ignored';
      this.tokens.set(revokedToken.jti, until);
      this.seen.set(jti, until);
      return 'applied';
    }
    const event = events[SESSION_REVOKED];
    const subId = claims.sub_id as
      | { format?: string; sub?: unknown; session?: { id?: unknown }; user?: { sub?: unknown } }
      | undefined;
    if (!event || !subId) return 'ignored'; // an event type we do not know: not ours to act on
    const at = typeof event.event_timestamp === 'number' ? event.event_timestamp : undefined;
    if (at === undefined) return 'ignored';
    const until = at * 1000 + this.retentionMs;
    if (until <= this.now()) {
      this.seen.set(jti, this.now() + this.retentionMs);
      return 'ignored'; // every token it could refuse has already expired
    }
    if (subId.format === 'complex' && typeof subId.session?.id === 'string') {
      const prev = this.sessions.get(subId.session.id) ?? 0;
      this.sessions.set(subId.session.id, Math.max(prev, until));
    } else if (subId.format === 'iss_sub' && typeof subId.sub === 'string') {
      const prev = this.users.get(subId.sub);
      this.users.set(subId.sub, {
        before: Math.max(prev?.before ?? at, at),
        until: Math.max(prev?.until ?? until, until),
      });
    } else {
      return 'ignored';
    }
    this.seen.set(jti, until);
    return 'applied';
  }

  /// Why a token with these claims must be refused, or undefined.
  revoked(token: TokenFacts & { jti?: unknown }): string | undefined {
    if (typeof token.jti === 'string' && this.tokens.has(token.jti)) return 'token revoked';
    if (typeof token.sid === 'string' && this.sessions.has(token.sid)) return 'session revoked';
    if (typeof token.sub === 'string') {
      const mark = this.users.get(token.sub);
      if (mark && (typeof token.iat !== 'number' || token.iat <= mark.before)) {
        return 'user revoked';
      }
    }
    return undefined;
  }

  /// Forgets what can no longer matter.
  prune() {
    const now = this.now();
    for (const [k, until] of this.sessions) if (until <= now) this.sessions.delete(k);
    for (const [k, v] of this.users) if (v.until <= now) this.users.delete(k);
    for (const [k, until] of this.tokens) if (until <= now) this.tokens.delete(k);
    for (const [k, until] of this.seen) if (until <= now) this.seen.delete(k);
  }

  get size() {
    return { sessions: this.sessions.size, users: this.users.size, tokens: this.tokens.size, seen: this.seen.size };
  }
}
