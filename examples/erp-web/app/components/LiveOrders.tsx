'use client';
// Calls the BFF route every 1.5 s, as a busy ERP screen would; goes to sign-in only when the
// server says the session is over.
import { useEffect, useState } from 'react';

type Orders = { at: string; orders: { id: string; customer: string; total: number }[] };

export function LiveOrders() {
  const [data, setData] = useState<Orders | null>(null);
  const [ok, setOk] = useState(0);
  const [failed, setFailed] = useState(0);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const res = await fetch('/api/data', { cache: 'no-store' });
        if (res.status === 401) {
          stopped = true;
          window.location.assign(`/login?reason=expired&return_to=${encodeURIComponent(window.location.pathname)}`);
          return;
        }
        if (res.ok) {
          setData((await res.json()) as Orders);
          setOk((n) => n + 1);
        } else {
          setFailed((n) => n + 1);
        }
      } catch {
        setFailed((n) => n + 1);
      }
      if (!stopped) timer = setTimeout(tick, 1000 + Math.random() * 1000);
    };
    void tick();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, []);

  return (
    <section>
      <h2>Open orders</h2>
      <p className="muted">
        Live: <span id="calls-ok">{ok}</span> calls answered, <span id="calls-failed">{failed}</span> failed
        {data ? <> · as of <span id="as-of">{data.at}</span></> : null}
      </p>
      <table>
        <thead>
          <tr><th>Order</th><th>Customer</th><th>Total</th></tr>
        </thead>
        <tbody>
          {(data?.orders ?? []).map((o) => (
            <tr key={o.id}><td>{o.id}</td><td>{o.customer}</td><td>{o.total.toFixed(2)}</td></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
