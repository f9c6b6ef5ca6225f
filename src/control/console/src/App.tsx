import { useState, type FormEvent } from 'react';
import { call, get, saveToken, savedToken, type Token } from './api.ts';
import { zone } from './format.ts';
import { usePoll, useRoute } from './hooks.ts';
import { Audit } from './pages/Audit.tsx';
import { Dashboard } from './pages/Dashboard.tsx';
import { Files } from './pages/Files.tsx';
import { Policies } from './pages/Policies.tsx';
import { Restore } from './pages/Restore.tsx';
import { RunDetail, Runs } from './pages/Runs.tsx';
import { Tokens } from './pages/Tokens.tsx';
import { errorMessage } from '../../../util/errors.ts';

const pages = [
  ['dashboard', 'Dashboard'],
  ['runs', 'Runs'],
  ['policies', 'Policies'],
  ['restore', 'Restore'],
  ['tokens', 'Tokens'],
  ['audit', 'Audit'],
] as const;

export function App() {
  const route = useRoute();
  // Back from OpenID Connect: the server put a sign-in token in the fragment; keep it, then hide it.
  if (route[0] === 'signin' && route[1]) {
    saveToken(route[1]);
    window.history.replaceState(null, '', '#/dashboard');
    route.splice(0, route.length, 'dashboard');
  }
  const [token, setToken] = useState(savedToken());
  if (!token)
    return (
      <SignIn
        onSignedIn={(t) => {
          saveToken(t);
          setToken(t);
        }}
      />
    );
  const page = route[0] ?? 'dashboard';
  const signOut = () => {
    saveToken(null);
    setToken(null);
  };
  return (
    <>
      <header className="top">
        <span className="brand">Goldsnap</span>
        <nav>
          {pages.map(([id, label]) => (
            <a
              key={id}
              href={`#/${id}`}
              data-view={id}
              className={page === id || (page === 'files' && id === 'restore') ? 'current' : ''}
            >
              {label}
            </a>
          ))}
        </nav>
        <span className="zone" title="Every time in the console is shown in this zone">
          Times in {zone}
        </span>
        <button type="button" className="link" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id={`page-${page}`}>
        {page === 'dashboard' && <Dashboard />}
        {page === 'runs' && (route[1] ? <RunDetail id={route[1]} /> : <Runs />)}
        {page === 'policies' && <Policies />}
        {page === 'restore' && <Restore pointId={route[1]} />}
        {page === 'tokens' && <Tokens />}
        {page === 'audit' && <Audit />}
        {page === 'files' && route[1] && <Files pointId={route[1]} />}
      </main>
    </>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (token: string) => void }) {
  const [status, setStatus] = useState<string>();
  const { data: methods } = usePoll(() => get<{ oidc: boolean }>('/api/auth/methods'), 0);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const token = String(new FormData(e.currentTarget).get('token') ?? '').trim();
    try {
      await call<Token[]>('GET', '/api/vms?limit=1', undefined, token);
      onSignedIn(token);
    } catch (err) {
      setStatus(errorMessage(err));
    }
  };
  return (
    <main className="signin">
      <h1>Goldsnap</h1>
      <form id="login" onSubmit={submit}>
        <label>
          API token <input id="token" name="token" type="password" autoComplete="current-password" required />
        </label>
        <button type="submit">Sign in</button>
        <p className="hint">
          The server wrote an admin token to <code>&lt;data&gt;/admin-token</code> on its first start;{' '}
          <code>goldsnap tokens create</code> makes more.
        </p>
        {status && (
          <p id="status" className="error" role="alert">
            {status}
          </p>
        )}
      </form>
      {methods?.oidc && (
        <p>
          <a id="oidc" className="button" href="/auth/oidc/login">
            Sign in with your organisation (OpenID Connect)
          </a>
        </p>
      )}
    </main>
  );
}
