export const dynamic = 'force-dynamic';

export default async function SignedOut({ searchParams }: { searchParams: Promise<{ error?: string }> }) {
  const { error } = await searchParams;
  return (
    <main>
      <h1>You are signed out</h1>
      {error ? <p className="error" id="sign-in-error">{error}</p> : null}
      <p>
        <a href="/login" id="sign-in">Sign in</a>
      </p>
    </main>
  );
}
