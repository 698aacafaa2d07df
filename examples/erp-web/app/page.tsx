import { redirect } from 'next/navigation';
import { Header } from './components/Header';
import { LiveOrders } from './components/LiveOrders';
import { accessToken, currentSession, SessionEnded } from '@/lib/session';

export const dynamic = 'force-dynamic';

export default async function Home() {
  const session = await currentSession();
  if (!session) redirect('/login');
  try {
    await accessToken(session); // refreshed here if due: the page is only shown to a live session
  } catch (e) {
    if (e instanceof SessionEnded) redirect('/login?reason=expired');
    throw e;
  }
  return (
    <>
      <Header session={session} />
      <main>
        <h1>Welcome, {session.name ?? session.sub}</h1>
        <p>
          Roles:{' '}
          <span id="roles">
            {session.roles.length ? session.roles.map((r) => <span className="badge" key={r}>{r}</span>) : 'none'}
          </span>
        </p>
        <LiveOrders />
      </main>
    </>
  );
}
