// POST /logout: forgets the session here and ends Tessera's too (RP-initiated logout).
import * as client from 'openid-client';
import { NextResponse, type NextRequest } from 'next/server';
import { settings } from '@/lib/config';
import { SESSION_COOKIE, unseal } from '@/lib/cookie';
import { oidc } from '@/lib/oidc';
import { deleteSession, getSession } from '@/lib/session';

export const dynamic = 'force-dynamic';

export async function POST(request: NextRequest) {
  const s = settings();
  // The cookie is SameSite=Lax (never sent on a cross-site POST); checking Origin too.
  const origin = request.headers.get('origin');
  if (origin && origin !== new URL(s.appUrl).origin) {
    return new NextResponse('Cross-site sign-out refused', { status: 403 });
  }
  const sealed = await unseal<{ session: string }>(request.cookies.get(SESSION_COOKIE)?.value);
  const session = sealed ? getSession(sealed.session) : undefined;
  if (sealed) deleteSession(sealed.session);
  const params: Record<string, string> = { post_logout_redirect_uri: `${s.appUrl}/signed-out` };
  if (session?.idToken) params.id_token_hint = session.idToken;
  const url = client.buildEndSessionUrl(await oidc(), params);
  const res = NextResponse.redirect(url.href, 303);
  res.cookies.delete(SESSION_COOKIE);
  return res;
}
