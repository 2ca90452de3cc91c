import { useState } from 'preact/hooks';
import { call, get, post, type AuditEntry, type Device, type Operator } from '../api.js';
import { AuditTable, Loading, NeedsPermission, Problem, StateBadge, day, useLoad, filledFields } from '../ui.js';
import { SecretOnce } from './devices.js';
import { RevokeForm } from './revoke.js';

type DeviceWithCerts = Device & { certificates: Array<{ serial: string; status: string; notAfter: string; current: boolean }> };

function NewSecret({ op, id }: { op: Operator; id: string }) {
  const [error, setError] = useState<unknown>();
  const [secret, setSecret] = useState<string>();
  const make = async () => {
    setError(undefined);
    try {
      setSecret((await post<{ secret: string }>(`/api/v1/devices/${encodeURIComponent(id)}/secret`)).secret);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section class="action" aria-labelledby="secret-h">
      <h2 id="secret-h">Enrollment secret</h2>
      <NeedsPermission op={op} permission="device:register" />
      <p>A new one-time secret replaces any earlier one.</p>
      <button type="button" onClick={make}>
        Create a one-time secret
      </button>
      <Problem error={error} />
      {secret && <SecretOnce secret={secret} />}
    </section>
  );
}

/**
 * Ownership or domain transfer: the API revokes the device's certificates
 * (affiliationChanged) and lets it enroll again for the new owner; a new
 * one-time secret for that re-enrollment is shown once.
 */
function Transfer({ op, d, onDone }: { op: Operator; d: Device; onDone: () => void }) {
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState<{ secret: string | null; owner: string | null; domain: string | null }>();
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const body: Record<string, unknown> = filledFields(f, ['owner', 'domain', 'note']);
    if (f.get('secret')) body.secret = true;
    setError(undefined);
    setDone(undefined);
    if (body.owner === undefined && body.domain === undefined) return setError(new Error('Give the new owner, the new domain, or both.'));
    if (!confirm(`Transfer ${d.id}? Its certificates are revoked (affiliationChanged) and it must enroll again.`)) return;
    try {
      const r = await post<{ device: Device; secret: string | null }>(`/api/v1/devices/${encodeURIComponent(d.id)}/transfer`, body);
      setDone({ secret: r.secret, owner: r.device.owner, domain: r.device.domain });
      form.reset();
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section class="action" aria-labelledby="transfer-h">
      <h2 id="transfer-h">Transfer ownership</h2>
      <NeedsPermission op={op} permission="device:lifecycle" />
      <form onSubmit={submit}>
        <label>
          New owner
          <input name="owner" />
        </label>
        <label>
          New domain
          <input name="domain" pattern="[a-z0-9][a-z0-9.\-]{0,62}" />
        </label>
        <label>
          Note
          <input name="note" />
        </label>
        <label class="check">
          <input type="checkbox" name="secret" checked /> Create a one-time secret to enroll again
        </label>
        <button type="submit" class="danger">
          Transfer
        </button>
      </form>
      <Problem error={error} />
      {done && (
        <div class="success" role="status">
          <p>
            Transferred to {done.owner ?? '—'} (domain {done.domain ?? '—'}); its certificates are revoked (affiliationChanged).
          </p>
          {done.secret && <SecretOnce secret={done.secret} />}
        </div>
      )}
    </section>
  );
}

interface Identities {
  stage: string | null;
  identities: Array<{ kind: string; stage: string | null; serial: string; subject: string; issuer: string; notAfter: string; fingerprintSha256: string }>;
  entries: Array<{ stage: string; manifest: string; usedSerial: string | null }>;
}

/** The chain of identities (docs/supply-chain.md): manufacturer certificate, then the first certificate of each stage. */
function IdentityChain({ id }: { id: string }) {
  const s = useLoad(() => get<Identities>(`/api/v1/devices/${encodeURIComponent(id)}/identities`), [id]);
  return (
    <Loading state={s}>
      {(r) =>
        r.identities.length === 0 && r.entries.length === 0 ? null : (
          <>
            <h2>Chain of identities</h2>
            {r.identities.length > 0 && (
            <table id="device-identities">
              <thead>
                <tr>
                  <th scope="col">Identity</th>
                  <th scope="col">Serial</th>
                  <th scope="col">Subject</th>
                  <th scope="col">Issuer</th>
                  <th scope="col">Valid until</th>
                </tr>
              </thead>
              <tbody>
                {r.identities.map((i) => (
                  <tr key={i.fingerprintSha256}>
                    <td>{i.kind === 'manufacturer' ? 'manufacturer' : i.stage ? `stage ${i.stage}` : 'first certificate'}</td>
                    <td class="mono">{i.kind === 'manufacturer' ? i.serial : <a href={`#/certificates/${i.serial}`}>{i.serial}</a>}</td>
                    <td>{i.subject}</td>
                    <td>{i.issuer}</td>
                    <td>{day(i.notAfter)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            )}
            {r.entries.length > 0 && (
              <p>
                Stage {r.stage ?? '—'}; handed over by {r.entries.length} manifest{r.entries.length === 1 ? '' : 's'} ({r.entries.map((e) => `${e.stage}${e.usedSerial ? '' : ': not entered yet'}`).join(', ')}).
              </p>
            )}
          </>
        )
      }
    </Loading>
  );
}

/** Lifecycle changes an operator may make (registry/lifecycle.ts decides which apply now). */
const STATE_ACTIONS: Array<[string, string]> = [
  ['suspended', 'Suspend'],
  ['active', 'Resume (active)'],
  ['registered', 'Resume (registered, to enroll again)'],
  ['retired', 'Retire'],
];

function ChangeState({ op, d, onDone }: { op: Operator; d: Device; onDone: () => void }) {
  const [error, setError] = useState<unknown>();
  const submit = async (e: Event) => {
    e.preventDefault();
    const state = String(new FormData(e.currentTarget as HTMLFormElement).get('state'));
    setError(undefined);
    try {
      await call('PATCH', `/api/v1/devices/${encodeURIComponent(d.id)}`, { state });
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section class="action" aria-labelledby="state-h">
      <h2 id="state-h">Lifecycle state</h2>
      <NeedsPermission op={op} permission="device:register" />
      <form onSubmit={submit}>
        <label>
          New state
          <select name="state">
            {STATE_ACTIONS.filter(([s]) => s !== d.state).map(([s, label]) => (
              <option key={s} value={s}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Change state</button>
      </form>
      <Problem error={error} />
    </section>
  );
}

export function DevicePage({ op, id }: { op: Operator; id: string }) {
  const dev = useLoad(() => get<DeviceWithCerts>(`/api/v1/devices/${encodeURIComponent(id)}`), [id]);
  const events = useLoad(() => get<AuditEntry[]>(`/api/v1/devices/${encodeURIComponent(id)}/audit`), [id]);
  const reload = () => {
    dev.reload();
    events.reload();
  };
  return (
    <section aria-labelledby="device-h">
      <p>
        <a href="#/devices">← Devices</a>
      </p>
      <h1 id="device-h">Device {id}</h1>
      <Loading state={dev}>
        {(d) => (
          <>
            <dl class="facts">
              <dt>State</dt>
              <dd>
                <StateBadge state={d.state} />
              </dd>
              <dt>Profile</dt>
              <dd>{d.profile}</dd>
              <dt>Domain</dt>
              <dd>{d.domain ?? '—'}</dd>
              <dt>Model</dt>
              <dd>{d.model ?? '—'}</dd>
              <dt>Owner</dt>
              <dd>{d.owner ?? '—'}</dd>
              <dt>Extra names</dt>
              <dd>{d.sans.join(', ') || '—'}</dd>
              <dt>Approval</dt>
              <dd>{d.requireApproval ? 'enrollments wait for approval' : 'not needed'}</dd>
              <dt>Current certificate</dt>
              <dd>{d.currentSerial ? <a class="mono" href={`#/certificates/${d.currentSerial}`}>{d.currentSerial}</a> : 'none'}</dd>
            </dl>
            <h2>Certificate history</h2>
            {d.certificates.length === 0 ? (
              <p>No certificate yet: the device has not enrolled.</p>
            ) : (
              <table id="device-certificates">
                <thead>
                  <tr>
                    <th scope="col">Serial</th>
                    <th scope="col">Status</th>
                    <th scope="col">Valid until</th>
                    <th scope="col">Current</th>
                  </tr>
                </thead>
                <tbody>
                  {d.certificates.map((c) => (
                    <tr key={c.serial}>
                      <td>
                        <a class="mono" href={`#/certificates/${c.serial}`}>
                          {c.serial}
                        </a>
                      </td>
                      <td class={c.status === 'revoked' ? 'bad' : ''}>{c.status}</td>
                      <td>{day(c.notAfter)}</td>
                      <td>{c.current ? 'yes' : ''}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            {d.currentSerial && <RevokeForm key={d.currentSerial} op={op} serial={d.currentSerial} revoked={!d.certificates.some((c) => c.current && c.status === 'good')} onDone={reload} />}
            {d.state !== 'revoked' && d.state !== 'retired' && <NewSecret op={op} id={d.id} />}
            {d.state !== 'revoked' && d.state !== 'retired' && <ChangeState op={op} d={d} onDone={reload} />}
            {d.state !== 'retired' && <Transfer op={op} d={d} onDone={reload} />}
          </>
        )}
      </Loading>
      <IdentityChain id={id} />
      <h2>History</h2>
      <Loading state={events}>
        {(list) => <AuditTable entries={list} id="device-events" />}
      </Loading>
    </section>
  );
}
