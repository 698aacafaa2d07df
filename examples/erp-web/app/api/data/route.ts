// GET /api/data: the browser's window on the ERP API (backend-for-frontend): the access token is
// added here and never reaches the browser.
import { NextResponse } from 'next/server';
import { callApi, currentSession, SessionEnded } from '@/lib/session';

export const dynamic = 'force-dynamic';

export async function GET() {
  const session = await currentSession();
  if (!session) return NextResponse.json({ signedOut: true }, { status: 401, headers: { 'Cache-Control': 'no-store' } });
  try {
    const res = await callApi(session, '/api/orders');
    const body = await res.json().catch(() => ({}));
    return NextResponse.json(body, { status: res.status, headers: { 'Cache-Control': 'no-store' } });
  } catch (e) {
    if (e instanceof SessionEnded) {
      return NextResponse.json({ signedOut: true }, { status: 401, headers: { 'Cache-Control': 'no-store' } });
    }
    console.error('erp-web: API call failed:', (e as Error).message);
    return NextResponse.json({ error: 'unavailable' }, { status: 502, headers: { 'Cache-Control': 'no-store' } });
  }
}
