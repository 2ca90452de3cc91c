import { useState } from 'preact/hooks';
import { DEVICE_STATES, get, post, qs, type Device, type Operator } from '../api.js';
import { Loading, NeedsPermission, Problem, ProfileSelect, StateBadge, day, filledFields, useLoad } from '../ui.js';

export interface DeviceFilter {
  state?: string;
  domain?: string;
  model?: string;
  owner?: string;
}

function Filter({ filter }: { filter: DeviceFilter }) {
  const submit = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const q: Record<string, string> = {};
    for (const k of ['state', 'domain', 'model', 'owner']) q[k] = String(f.get(k) ?? '').trim();
    location.hash = `#/devices${qs(q)}`;
  };
  return (
    <form class="filters" onSubmit={submit} aria-label="Filter devices">
      <label>
        State
        <select name="state" value={filter.state ?? ''}>
          <option value="">any</option>
          {DEVICE_STATES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      {(['domain', 'model', 'owner'] as const).map((k) => (
        <label key={k}>
          {k[0].toUpperCase() + k.slice(1)}
          <input name={k} value={filter[k] ?? ''} />
        </label>
      ))}
      <button type="submit">Search</button>
    </form>
  );
}

function RegisterDevice({ op, onDone }: { op: Operator; onDone: () => void }) {
  const [error, setError] = useState<unknown>();
  const [result, setResult] = useState<{ id: string; secret: string | null }>();
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const body: Record<string, unknown> = { id: String(f.get('id')).trim(), profile: String(f.get('profile')), ...filledFields(f, ['domain', 'model', 'owner']) };
    if (f.get('secret')) body.secret = true;
    if (f.get('requireApproval')) body.requireApproval = true;
    setError(undefined);
    setResult(undefined);
    try {
      const d = await post<{ id: string; secret: string | null }>('/api/v1/devices', body);
      setResult(d);
      form.reset();
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby="register-h" class="action">
      <h2 id="register-h">Register a device</h2>
      <NeedsPermission op={op} permission="device:register" />
      <form onSubmit={submit}>
        <label>
          Device id (serial number)
          <input name="id" required pattern="[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}" />
        </label>
        <ProfileSelect label="Profile" />
        <label>
          Domain
          <input name="domain" />
        </label>
        <label>
          Model
          <input name="model" />
        </label>
        <label>
          Owner
          <input name="owner" />
        </label>
        <label class="check">
          <input type="checkbox" name="secret" checked /> Create a one-time enrollment secret
        </label>
        <label class="check">
          <input type="checkbox" name="requireApproval" /> Enrollments wait for approval
        </label>
        <button type="submit">Register</button>
      </form>
      <Problem error={error} />
      {result && (
        <div class="success" role="status">
          <p>
            Registered <a href={`#/devices/${encodeURIComponent(result.id)}`}>{result.id}</a>.
          </p>
          {result.secret && <SecretOnce secret={result.secret} />}
        </div>
      )}
    </section>
  );
}

/** A one-time secret: shown here once, never again (the server keeps only its hash). */
export function SecretOnce({ secret }: { secret: string }) {
  return (
    <p>
      One-time enrollment secret (shown once, copy it now): <output class="secret mono" id="one-time-secret">{secret}</output>
    </p>
  );
}

export function DevicesPage({ op, filter }: { op: Operator; filter: DeviceFilter }) {
  const key = JSON.stringify(filter);
  const s = useLoad(() => get<{ items: Device[]; next: string | null }>(`/api/v1/devices${qs({ ...filter, limit: 200 })}`), [key]);
  return (
    <section aria-labelledby="devices-h">
      <h1 id="devices-h">Devices</h1>
      <Filter filter={filter} />
      <Loading state={s}>
        {(page) =>
          page.items.length === 0 ? (
            <p>No device matches.</p>
          ) : (
            <table>
              <caption>
                {page.items.length} device{page.items.length === 1 ? '' : 's'}
                {page.next ? ' (first 200)' : ''}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Id</th>
                  <th scope="col">State</th>
                  <th scope="col">Profile</th>
                  <th scope="col">Domain</th>
                  <th scope="col">Model</th>
                  <th scope="col">Owner</th>
                  <th scope="col">Registered</th>
                </tr>
              </thead>
              <tbody>
                {page.items.map((d) => (
                  <tr key={d.id}>
                    <td>
                      <a href={`#/devices/${encodeURIComponent(d.id)}`}>{d.id}</a>
                    </td>
                    <td>
                      <StateBadge state={d.state} />
                    </td>
                    <td>{d.profile}</td>
                    <td>{d.domain ?? '—'}</td>
                    <td>{d.model ?? '—'}</td>
                    <td>{d.owner ?? '—'}</td>
                    <td>{day(d.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
      <RegisterDevice op={op} onDone={s.reload} />
    </section>
  );
}
