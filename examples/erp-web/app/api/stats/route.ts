// GET /api/stats: refresh counters for the proof test, only when ERP_EXPOSE_STATS=1 (never in
// production: it says how busy the app is).
import { NextResponse } from 'next/server';
import { stats } from '@/lib/session';

export const dynamic = 'force-dynamic';

export async function GET() {
  if (process.env.ERP_EXPOSE_STATS !== '1') return NextResponse.json({ error: 'not_found' }, { status: 404 });
  return NextResponse.json(stats, { headers: { 'Cache-Control': 'no-store' } });
}
