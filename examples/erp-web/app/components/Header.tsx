import type { Session } from '@/lib/session';

export function Header({ session }: { session: Session }) {
  return (
    <header>
      <nav>
        <a href="/">Orders</a>
        <a href="/payroll">Payroll</a>
      </nav>
      <span>
        <span id="user-name">{session.name ?? session.sub}</span>{' '}
        <form method="post" action="/logout">
          <button type="submit" id="sign-out">Sign out</button>
        </form>
      </span>
    </header>
  );
}
