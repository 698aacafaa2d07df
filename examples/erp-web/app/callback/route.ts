// GET /callback: Tessera's redirect back; redeems the code, creates the server-side session.
import * as client from 'openid-client';
import { NextResponse, type NextRequest } from 'next/server';
import { settings } from '@/lib/config';
import { cookieOptions, LOGIN_COOKIE, SESSION_COOKIE, seal, unseal } from '@/lib/cookie';
import { oidc } from '@/lib/oidc';
import { createSession, deleteSession, SESSION_MAX_AGE } from '@/lib/session';

export const dynamic = 'force-dynamic';

type Pending = { state: string; nonce: string; codeVerifier: string; returnTo: string };

function failed(message: string) {
  const s = settings();
  const url = new URL('/signed-out', s.appUrl);
  url.searchParams.set('error', message);
  const res = NextResponse.redirect(url.href, 303);
  res.cookies.delete(LOGIN_COOKIE);
  return res;
}

export async function GET(request: NextRequest) {
  const s = settings();
  const pending = await unseal<Pending>(request.cookies.get(LOGIN_COOKIE)?.value);
  if (!pending) return failed('The sign-in took too long or was started elsewhere. Please try again.');
  // The URL Tessera redirected to, as registered (not whatever host the proxy saw).
  const current = new URL(`${s.appUrl}/callback${request.nextUrl.search}`);
  let tokens;
  try {
    tokens = await client.authorizationCodeGrant(await oidc(), current, {
      pkceCodeVerifier: pending.codeVerifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
  } catch (e) {
    if (e instanceof client.AuthorizationResponseError) {
      return failed(e.error === 'access_denied' ? 'Sign-in was cancelled.' : 'Sign-in failed.');
    }
    console.error('erp-web: code redemption failed:', (e as Error).message);
    return failed('Sign-in failed.');
  }
  // A step-up replaces the session it upgrades.
  const old = await unseal<{ session: string }>(request.cookies.get(SESSION_COOKIE)?.value);
  if (old) deleteSession(old.session);
  const session = createSession(tokens);
  const res = NextResponse.redirect(new URL(pending.returnTo, s.appUrl).href, 303);
  res.headers.set('Cache-Control', 'no-store');
  res.cookies.delete(LOGIN_COOKIE);
  res.cookies.set(SESSION_COOKIE, await seal({ session: session.id }, SESSION_MAX_AGE), cookieOptions(SESSION_MAX_AGE));
  return res;
}
