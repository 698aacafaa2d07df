// POST /api/backchannel-logout: OIDC Back-Channel Logout 1.0 §2.5-2.8. Tessera posts a signed
// logout token when a session ends; every ERP session of that Tessera session is deleted, so the
// next request of any tab goes to sign-in.
import { jwtVerify } from 'jose';
import { NextResponse, type NextRequest } from 'next/server';
import { settings } from '@/lib/config';
import { jwks, oidc } from '@/lib/oidc';
import { deleteByTessera } from '@/lib/session';

export const dynamic = 'force-dynamic';

const LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

const g = globalThis as unknown as { __erpLogoutJtis?: Map<string, number> };
const seenJtis = (g.__erpLogoutJtis ??= new Map());

function refuse(description: string) {
  return NextResponse.json(
    { error: 'invalid_request', error_description: description },
    { status: 400, headers: { 'Cache-Control': 'no-store' } },
  );
}

export async function POST(request: NextRequest) {
  const s = settings();
  let logoutToken: string | null = null;
  try {
    logoutToken = (await request.formData()).get('logout_token') as string | null;
  } catch {
    return refuse('expected a form with logout_token');
  }
  if (!logoutToken) return refuse('logout_token missing');
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(logoutToken, await jwks(), {
      issuer: (await oidc()).serverMetadata().issuer,
      audience: s.clientId,
      typ: 'logout+jwt',
      algorithms: ['ES256', 'EdDSA', 'RS256'],
      requiredClaims: ['iat', 'jti', 'events'],
      maxTokenAge: '5 min',
      clockTolerance: 5,
    }));
  } catch {
    return refuse('the logout token is not valid');
  }
  const events = claims.events as Record<string, unknown> | undefined;
  if (!events || typeof events !== 'object' || !(LOGOUT_EVENT in events)) return refuse('not a logout event');
  if ('nonce' in claims) return refuse('a logout token never carries a nonce');
  const sid = typeof claims.sid === 'string' ? claims.sid : undefined;
  const sub = typeof claims.sub === 'string' ? claims.sub : undefined;
  if (!sid && !sub) return refuse('neither sid nor sub');
  // A replayed token is answered as handled (the sessions are already gone) but does nothing.
  const now = Date.now();
  for (const [jti, until] of seenJtis) if (until < now) seenJtis.delete(jti);
  if (!seenJtis.has(claims.jti as string)) {
    seenJtis.set(claims.jti as string, now + 10 * 60_000);
    const ended = deleteByTessera(sid, sub);
    console.log(`erp-web: back-channel logout for sid ${sid ?? '-'} ended ${ended} session(s)`);
  }
  return new NextResponse(null, { status: 200, headers: { 'Cache-Control': 'no-store' } });
}
