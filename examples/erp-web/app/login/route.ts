// GET /login: starts the authorization code flow with PKCE (and state and nonce).
// ?step_up=1 asks for a second factor (acr_values=2); ?reason=expired forces a new sign-in;
// ?return_to=/path comes back there.
import * as client from 'openid-client';
import { NextResponse, type NextRequest } from 'next/server';
import { settings } from '@/lib/config';
import { cookieOptions, LOGIN_COOKIE, seal } from '@/lib/cookie';
import { oidc, safeReturnTo } from '@/lib/oidc';

export const dynamic = 'force-dynamic';

export async function GET(request: NextRequest) {
  const s = settings();
  const q = request.nextUrl.searchParams;
  const config = await oidc();
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params: Record<string, string> = {
    redirect_uri: `${s.appUrl}/callback`,
    scope: s.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  if (q.get('step_up') === '1') params.acr_values = '2';
  // The ERP's session ran out (idle past Tessera's refresh limit, or revoked): ask for the
  // password again rather than slipping back in on Tessera's browser session.
  if (q.get('reason') === 'expired') params.prompt = 'login';
  const url = client.buildAuthorizationUrl(config, params);
  const res = NextResponse.redirect(url.href, 303);
  res.headers.set('Cache-Control', 'no-store');
  res.cookies.set(
    LOGIN_COOKIE,
    await seal({ state, nonce, codeVerifier, returnTo: safeReturnTo(q.get('return_to')) }, 600),
    cookieOptions(600),
  );
  return res;
}
