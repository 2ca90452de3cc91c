import { useState } from 'preact/hooks';
import { call, get, post, type AuditEntry, type Device, type Operator } from '../api.js';
import { AuditTable, Loading, NeedsPermission, Problem, StateBadge, day, useLoad } from '../ui.js';
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
          </>
        )}
      </Loading>
      <h2>History</h2>
      <Loading state={events}>
        {(list) => <AuditTable entries={list} id="device-events" />}
      </Loading>
    </section>
  );
}
