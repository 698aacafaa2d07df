// Server-side sessions (in memory for the example; a shared store such as Redis in production),
// keyed by a random id in the cookie and indexed by Tessera's `sid` for back-channel logout.
// Tokens never leave the server.
import { randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import { decodeJwt } from 'jose';
import { cookies } from 'next/headers';
import { settings } from './config';
import { SESSION_COOKIE, unseal } from './cookie';
import { oidc } from './oidc';
import { SessionEnded, singleFlight, withRetries } from './retry';

export interface Session {
  id: string;
  sid: string | undefined;
  sub: string;
  name: string | undefined;
  roles: string[];
  acr: string | undefined;
  idToken: string | undefined;
  accessToken: string;
  /// ms since the epoch
  accessExpiresAt: number;
  accessLifetimeMs: number;
  refreshToken: string | undefined;
  /// The single refresh in flight, shared by every request of this session.
  inFlight?: Promise<void>;
  createdAt: number;
  lastUsedAt: number;
}

/// The session's lifetime in the cookie; Tessera's refresh idle/absolute limits decide sooner.
export const SESSION_MAX_AGE = 12 * 3600;

type Stats = { refreshes: number; refreshErrors: number; retries: number; sessionsEnded: number };
const gs = globalThis as unknown as { __erpStats?: Stats };
/// Refreshes that succeeded, that failed for good (not invalid_grant), that were retried, and
/// refreshes Tessera refused with invalid_grant (the user must sign in again).
export const stats = (gs.__erpStats ??= { refreshes: 0, refreshErrors: 0, retries: 0, sessionsEnded: 0 });

const g = globalThis as unknown as { __erpSessions?: Map<string, Session>; __erpBySid?: Map<string, Set<string>> };
const sessions = (g.__erpSessions ??= new Map());
const bySid = (g.__erpBySid ??= new Map());

export { SessionEnded };

export function createSession(tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers): Session {
  const id = randomBytes(32).toString('base64url');
  const idClaims = tokens.claims();
  const session: Session = {
    id,
    sid: undefined,
    sub: '',
    name: undefined,
    roles: [],
    acr: undefined,
    idToken: tokens.id_token,
    accessToken: '',
    accessExpiresAt: 0,
    accessLifetimeMs: 0,
    refreshToken: undefined,
    createdAt: Date.now(),
    lastUsedAt: Date.now(),
  };
  sweep();
  store(session, tokens);
  session.sid = (idClaims?.sid as string | undefined) ?? session.sid;
  session.name = (idClaims?.name as string | undefined) ?? session.name;
  sessions.set(id, session);
  if (session.sid) {
    const set = bySid.get(session.sid) ?? new Set<string>();
    set.add(id);
    bySid.set(session.sid, set);
  }
  return session;
}

/// Takes what a token response carries; the access token's own claims (it came straight from
/// Tessera's token endpoint) give roles, acr and sid for display and routing decisions.
function store(s: Session, tokens: client.TokenEndpointResponse) {
  const claims = decodeJwt(tokens.access_token);
  const lifetime = (tokens.expires_in ?? 300) * 1000;
  s.accessToken = tokens.access_token;
  s.accessLifetimeMs = lifetime;
  s.accessExpiresAt = Date.now() + lifetime;
  if (tokens.refresh_token) s.refreshToken = tokens.refresh_token;
  if (tokens.id_token) s.idToken = tokens.id_token;
  s.sub = String(claims.sub ?? s.sub);
  s.roles = Array.isArray(claims.roles) ? (claims.roles as string[]) : [];
  s.acr = typeof claims.acr === 'string' ? claims.acr : undefined;
  s.sid = typeof claims.sid === 'string' ? claims.sid : s.sid;
}

/// Forgets sessions nobody used for the cookie's lifetime (their cookies have expired).
function sweep() {
  const cutoff = Date.now() - SESSION_MAX_AGE * 1000;
  for (const s of sessions.values()) if (s.lastUsedAt < cutoff) deleteSession(s.id);
}

export function deleteSession(id: string) {
  const s = sessions.get(id);
  if (!s) return;
  sessions.delete(id);
  if (s.sid) {
    const set = bySid.get(s.sid);
    set?.delete(id);
    if (set?.size === 0) bySid.delete(s.sid);
  }
}

/// Back-channel logout: every session of this Tessera session (or of this user without a sid).
export function deleteByTessera(sid: string | undefined, sub: string | undefined): number {
  let ids: string[] = [];
  if (sid) ids = [...(bySid.get(sid) ?? [])];
  else if (sub) ids = [...sessions.values()].filter((s) => s.sub === sub).map((s) => s.id);
  ids.forEach(deleteSession);
  return ids.length;
}

export function getSession(id: string): Session | undefined {
  return sessions.get(id);
}

export async function currentSession(): Promise<Session | undefined> {
  const jar = await cookies();
  const sealed = await unseal<{ session: string }>(jar.get(SESSION_COOKIE)?.value);
  const s = sealed ? sessions.get(sealed.session) : undefined;
  if (s) s.lastUsedAt = Date.now();
  return s;
}

/// Refresh this long before expiry: a quarter of the lifetime, between 2 s and 60 s.
function margin(s: Session) {
  return Math.min(60_000, Math.max(2_000, s.accessLifetimeMs / 4));
}

/// A valid access token for this session, refreshed first if it is about to expire. However many
/// tabs and requests ask at once, one refresh is in flight per session (and Tessera's grace window
/// makes a second server instance's parallel refresh harmless).
export async function accessToken(s: Session): Promise<string> {
  if (Date.now() < s.accessExpiresAt - margin(s)) return s.accessToken;
  await singleFlight(s, () => refresh(s));
  return s.accessToken;
}

/// One refresh, retried on network errors, timeouts, 5xx and 429 (lib/retry.ts); `invalid_grant`
/// ends the session.
async function refresh(s: Session): Promise<void> {
  const config = await oidc();
  const presented = s.refreshToken;
  if (!presented) throw new SessionEnded('no refresh token');
  try {
    const tokens = await withRetries(
      async () => {
        try {
          return await client.refreshTokenGrant(config, presented);
        } catch (e) {
          if (e instanceof client.ResponseBodyError && e.error === 'invalid_grant') {
            throw new SessionEnded(e.error_description ?? 'invalid_grant');
          }
          throw e;
        }
      },
      { onRetry: () => (stats.retries += 1) },
    );
    store(s, tokens);
    stats.refreshes += 1;
  } catch (e) {
    if (e instanceof SessionEnded) {
      stats.sessionsEnded += 1;
      deleteSession(s.id);
    } else {
      stats.refreshErrors += 1;
    }
    throw e;
  }
}

/// Calls the ERP API with this session's access token.
export async function callApi(s: Session, path: string): Promise<Response> {
  const { apiUrl } = settings();
  const token = await accessToken(s);
  return fetch(`${apiUrl}${path}`, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    cache: 'no-store',
    signal: AbortSignal.timeout(10_000),
  });
}
