/**
 * The fleetpki web console: a single page over the admin API. Routes live in
 * the URL fragment (#/devices/sensor-1), so the server serves one page and
 * every view can be bookmarked. Sign-in trades an API token for a session
 * cookie (HttpOnly: this code never sees it) and a CSRF token.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, setCsrf, type Operator } from './api.js';
import { AuditPage } from './pages/audit.js';
import { CasPage } from './pages/cas.js';
import { CertificatePage, CertificatesPage } from './pages/certificates.js';
import { DevicePage } from './pages/device.js';
import { DevicesPage } from './pages/devices.js';
import { EnrollmentsPage } from './pages/enrollments.js';
import { ManifestsPage } from './pages/manifests.js';
import { OverviewPage } from './pages/overview.js';
import { Problem } from './ui.js';

interface SessionAnswer {
  operator: Operator;
  csrf: string;
}

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function SignIn({ onSignedIn }: { onSignedIn: (s: SessionAnswer) => void }) {
  const [error, setError] = useState<unknown>();
  const submit = async (e: Event) => {
    e.preventDefault();
    const token = String(new FormData(e.currentTarget as HTMLFormElement).get('token') ?? '');
    setError(undefined);
    try {
      onSignedIn(await call<SessionAnswer>('POST', '/console/session', { token }));
    } catch (err) {
      setError(err);
    }
  };
  return (
    <main id="main" class="signin">
      <h1>fleetpki console</h1>
      <form onSubmit={submit}>
        <label>
          API token
          <input name="token" type="password" autocomplete="off" required autofocus />
        </label>
        <p class="hint">
          An operator token from <code>fleetpki token create --role ROLE</code> (or the admin token <code>fleetpki init</code> printed). Your role decides what you may do here.
        </p>
        <button type="submit">Sign in</button>
      </form>
      <Problem error={error} />
    </main>
  );
}

const NAV: Array<[string, string]> = [
  ['#/', 'Overview'],
  ['#/devices', 'Devices'],
  ['#/certificates', 'Certificates'],
  ['#/enrollments', 'Enrollments'],
  ['#/supply-chain', 'Supply chain'],
  ['#/cas', 'CAs'],
  ['#/audit', 'Audit log'],
];

function Page({ op, hash }: { op: Operator; hash: string }) {
  const [path, query = ''] = hash.replace(/^#/, '').split('?');
  const q = new URLSearchParams(query);
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case undefined:
      return <OverviewPage />;
    case 'devices':
      return parts[1] ? <DevicePage op={op} id={parts[1]} /> : <DevicesPage op={op} filter={{ state: q.get('state') ?? undefined, domain: q.get('domain') ?? undefined, model: q.get('model') ?? undefined, owner: q.get('owner') ?? undefined }} />;
    case 'certificates':
      return parts[1] ? <CertificatePage op={op} serial={parts[1]} /> : <CertificatesPage q={q.get('q') ?? ''} />;
    case 'enrollments':
      return <EnrollmentsPage op={op} />;
    case 'supply-chain':
      return <ManifestsPage op={op} />;
    case 'cas':
      return <CasPage />;
    case 'audit':
      return <AuditPage action={q.get('action') ?? ''} />;
    default:
      return <p role="alert">No such page.</p>;
  }
}

function App() {
  const [session, setSession] = useState<SessionAnswer | null | undefined>();
  const hash = useHash();
  useEffect(() => {
    call<SessionAnswer>('GET', '/console/session').then(
      (s) => {
        setCsrf(s.csrf);
        setSession(s);
      },
      (e) => {
        if (!(e instanceof ApiError && e.status === 401)) console.error(e);
        setSession(null);
      },
    );
  }, []);
  // A session that ends (idle, token revoked) sends the operator back to sign-in.
  useEffect(() => {
    const on = (e: PromiseRejectionEvent) => {
      if (e.reason instanceof ApiError && e.reason.status === 401) setSession(null);
    };
    addEventListener('unhandledrejection', on);
    return () => removeEventListener('unhandledrejection', on);
  }, []);
  if (session === undefined) return <p aria-live="polite">Loading…</p>;
  if (session === null)
    return (
      <SignIn
        onSignedIn={(s) => {
          setCsrf(s.csrf);
          setSession(s);
        }}
      />
    );
  const signOut = async () => {
    await call('DELETE', '/console/session').catch(() => undefined);
    setSession(null);
  };
  const here = hash.replace(/\?.*$/, '') || '#/';
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header>
        <span class="brand">fleetpki</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([href, label]) => (
              <li key={href}>
                <a href={href} aria-current={(href === '#/' ? here === '#/' : here.startsWith(href)) ? 'page' : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          <span id="operator">
            {session.operator.name} ({session.operator.role})
          </span>{' '}
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </span>
      </header>
      <main id="main" tabIndex={-1}>
        <Page op={session.operator} hash={hash} />
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
