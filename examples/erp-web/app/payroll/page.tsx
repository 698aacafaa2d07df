// Payroll needs a second factor at sign-in (acr "2"): without it, step up through Tessera.
import { redirect } from 'next/navigation';
import { Header } from '../components/Header';
import { callApi, currentSession, SessionEnded } from '@/lib/session';

export const dynamic = 'force-dynamic';

type Payroll = { payroll: { employee: string; net: number }[] };

export default async function PayrollPage() {
  const session = await currentSession();
  if (!session) redirect('/login?return_to=/payroll');
  if (session.acr !== '2') redirect('/login?step_up=1&return_to=/payroll');
  let res: Response;
  try {
    res = await callApi(session, '/api/payroll');
  } catch (e) {
    if (e instanceof SessionEnded) redirect('/login?reason=expired&return_to=/payroll');
    throw e;
  }
  const body = res.ok ? ((await res.json()) as Payroll) : null;
  return (
    <>
      <Header session={session} />
      <main>
        <h1>Payroll</h1>
        {body ? (
          <table id="payroll">
            <thead>
              <tr><th>Employee</th><th>Net</th></tr>
            </thead>
            <tbody>
              {body.payroll.map((p) => (
                <tr key={p.employee}><td>{p.employee}</td><td>{p.net.toFixed(2)}</td></tr>
              ))}
            </tbody>
          </table>
        ) : (
          <p className="error" id="payroll-refused">The API refused payroll ({res.status}): it needs the finance role.</p>
        )}
      </main>
    </>
  );
}
