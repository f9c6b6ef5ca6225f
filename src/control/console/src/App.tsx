import { useState, type FormEvent } from 'react';
import { call, saveToken, savedToken, type Token } from './api.ts';
import { zone } from './format.ts';
import { useRoute } from './hooks.ts';
import { Dashboard } from './pages/Dashboard.tsx';
import { Policies } from './pages/Policies.tsx';
import { Restore } from './pages/Restore.tsx';
import { RunDetail, Runs } from './pages/Runs.tsx';
import { Tokens } from './pages/Tokens.tsx';

const pages = [['dashboard', 'Dashboard'], ['runs', 'Runs'], ['policies', 'Policies'], ['restore', 'Restore'], ['tokens', 'Tokens']] as const;

export function App() {
  const [token, setToken] = useState(savedToken());
  const route = useRoute();
  if (!token) return <SignIn onSignedIn={(t) => { saveToken(t); setToken(t); }} />;
  const page = route[0] ?? 'dashboard';
  const signOut = () => { saveToken(null); setToken(null); };
  return (
    <>
      <header className="top">
        <span className="brand">Goldsnap</span>
        <nav>
          {pages.map(([id, label]) => <a key={id} href={`#/${id}`} data-view={id} className={page === id ? 'current' : ''}>{label}</a>)}
        </nav>
        <span className="zone" title="Every time in the console is shown in this zone">Times in {zone}</span>
        <button type="button" className="link" onClick={signOut}>Sign out</button>
      </header>
      <main id={`page-${page}`}>
        {page === 'dashboard' && <Dashboard />}
        {page === 'runs' && (route[1] ? <RunDetail id={route[1]} /> : <Runs />)}
        {page === 'policies' && <Policies />}
        {page === 'restore' && <Restore pointId={route[1]} />}
        {page === 'tokens' && <Tokens />}
      </main>
    </>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (token: string) => void }) {
  const [status, setStatus] = useState<string>();
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const token = String(new FormData(e.currentTarget).get('token') ?? '').trim();
    try {
      await call<Token[]>('GET', '/api/vms', undefined, token);
      onSignedIn(token);
    } catch (err) {
      setStatus((err as Error).message);
    }
  };
  return (
    <main className="signin">
      <h1>Goldsnap</h1>
      <form id="login" onSubmit={submit}>
        <label>API token <input id="token" name="token" type="password" autoComplete="current-password" required /></label>
        <button type="submit">Sign in</button>
        <p className="hint">The server wrote an admin token to <code>&lt;data&gt;/admin-token</code> on its first start; <code>goldsnap tokens create</code> makes more.</p>
        {status && <p id="status" className="error" role="alert">{status}</p>}
      </form>
    </main>
  );
}
