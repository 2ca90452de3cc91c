import { Fragment } from 'preact';
import { ApiError, call, get, qs, type Cert, type Operator } from '../api.js';
import { Loading, day, time, useLoad } from '../ui.js';
import { RevokeForm } from './revoke.js';

const SERIAL = /^(?:[0-9a-fA-F]{2}:?){1,32}$/;

/** Certificates whose serial is `q` (when it looks like one) or whose subject contains it. */
async function search(q: string): Promise<Cert[]> {
  const bySubject = get<{ items: Cert[] }>(`/api/v1/certificates${qs({ subject: q || undefined, limit: 200 })}`);
  const bySerial = SERIAL.test(q)
    ? get<Cert>(`/api/v1/certificates/${q.replace(/:/g, '')}`).catch((e) => {
        if (e instanceof ApiError && e.status === 404) return undefined;
        throw e;
      })
    : Promise.resolve(undefined);
  const [list, one] = await Promise.all([bySubject, bySerial]);
  return one ? [one, ...list.items.filter((c) => c.serial !== one.serial)] : list.items;
}

export function CertificatesPage({ q }: { q: string }) {
  const s = useLoad(() => search(q), [q]);
  const submit = (e: Event) => {
    e.preventDefault();
    location.hash = `#/certificates${qs({ q: String(new FormData(e.currentTarget as HTMLFormElement).get('q') ?? '').trim() })}`;
  };
  return (
    <section aria-labelledby="certs-h">
      <h1 id="certs-h">Certificates</h1>
      <form class="filters" role="search" onSubmit={submit}>
        <label>
          Serial or subject
          <input name="q" type="search" value={q} placeholder="e.g. 3f2a… or CN=sensor" />
        </label>
        <button type="submit">Search</button>
      </form>
      <Loading state={s}>
        {(items) =>
          items.length === 0 ? (
            <p>No certificate matches.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">Serial</th>
                  <th scope="col">Subject</th>
                  <th scope="col">Profile</th>
                  <th scope="col">Status</th>
                  <th scope="col">Valid until</th>
                </tr>
              </thead>
              <tbody>
                {items.map((c) => (
                  <tr key={c.serial}>
                    <td>
                      <a class="mono" href={`#/certificates/${c.serial}`}>
                        {c.serial.slice(0, 20)}
                        {c.serial.length > 20 ? '…' : ''}
                      </a>
                    </td>
                    <td>{c.subject}</td>
                    <td>{c.profile}</td>
                    <td class={c.status === 'revoked' ? 'bad' : ''}>{c.status}</td>
                    <td>{day(c.notAfter)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
    </section>
  );
}

interface Decoded {
  version: number;
  signatureAlgorithm: string;
  extensions: Array<{ oid: string; name: string; critical: boolean; lines: string[] }>;
  text: string;
}

async function downloadPem(serial: string) {
  const pem = await call<string>('GET', `/api/v1/certificates/${serial}`, undefined, 'application/pem-certificate-chain');
  const url = URL.createObjectURL(new Blob([pem], { type: 'application/x-pem-file' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `${serial}.pem`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function CertificatePage({ op, serial }: { op: Operator; serial: string }) {
  const cert = useLoad(() => get<Cert>(`/api/v1/certificates/${serial}`), [serial]);
  const dec = useLoad(() => get<Decoded>(`/api/v1/certificates/${serial}/decoded`), [serial]);
  return (
    <section aria-labelledby="cert-h">
      <p>
        <a href="#/certificates">← Certificates</a>
      </p>
      <h1 id="cert-h">
        Certificate <span class="mono">{serial}</span>
      </h1>
      <Loading state={cert}>
        {(c) => (
          <>
            <dl class="facts">
              <dt>Subject</dt>
              <dd>{c.subject}</dd>
              <dt>Issuer CA</dt>
              <dd>{c.issuerCa}</dd>
              <dt>Profile</dt>
              <dd>{c.profile}</dd>
              <dt>Names</dt>
              <dd>{c.sans.join(', ') || '—'}</dd>
              <dt>Valid</dt>
              <dd>
                {time(c.notBefore)} to {time(c.notAfter)}
              </dd>
              <dt>Status</dt>
              <dd id="cert-status" class={c.status === 'revoked' ? 'bad' : ''}>
                {c.status}
                {c.revokedAt ? ` since ${time(c.revokedAt)} (${c.revocationReason})` : ''}
              </dd>
              <dt>Requested by</dt>
              <dd>{c.requester}</dd>
            </dl>
            <p>
              <button type="button" onClick={() => downloadPem(c.serial)}>
                Download PEM
              </button>
            </p>
            <RevokeForm op={op} serial={c.serial} revoked={c.status === 'revoked'} onDone={cert.reload} />
          </>
        )}
      </Loading>
      <h2>Extensions</h2>
      <Loading state={dec}>
        {(d) => (
          <>
            <p>
              X.509 v{d.version}, signed with {d.signatureAlgorithm}.
            </p>
            <dl class="extensions" id="cert-extensions">
              {d.extensions.map((e) => (
                <Fragment key={e.oid}>
                  <dt>
                    {e.name} <span class="muted mono">{e.oid}</span>
                    {e.critical ? <> <span class="badge">critical</span></> : null}
                  </dt>
                  <dd>
                    <pre>{e.lines.join('\n')}</pre>
                  </dd>
                </Fragment>
              ))}
            </dl>
            <details>
              <summary>The whole certificate as text</summary>
              <pre>{d.text}</pre>
            </details>
          </>
        )}
      </Loading>
    </section>
  );
}
