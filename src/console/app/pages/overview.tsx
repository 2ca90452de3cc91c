import { get, type Overview } from '../api.js';
import { BarChart } from '../chart.js';
import { Loading, StateBadge, day, time, useLoad } from '../ui.js';

export function OverviewPage() {
  const s = useLoad(() => get<Overview>('/api/v1/overview'), []);
  return (
    <section aria-labelledby="overview-h">
      <h1 id="overview-h">Fleet overview</h1>
      <Loading state={s}>
        {(o) => (
          <>
            <h2>Devices by lifecycle state</h2>
            <ul class="cards" aria-label="Devices by lifecycle state">
              {Object.entries(o.devices).map(([state, n]) => (
                <li key={state}>
                  <a href={`#/devices?state=${state}`}>
                    <span class="count" data-state={state}>
                      {n}
                    </span>
                    <StateBadge state={state} />
                  </a>
                </li>
              ))}
            </ul>
            <div class="charts">
              <BarChart id="chart-expiring" title="Certificates expiring per week" data={o.expiringPerWeek} label={(b) => day(b.start).slice(5)} unit="certificates" />
              <BarChart id="chart-enrollments" title="Enrollments per day" data={o.enrollmentsPerDay} label={(b) => day(b.start).slice(5)} unit="enrollments" />
            </div>
            <h2>Recent revocations</h2>
            {o.recentRevocations.length === 0 ? (
              <p>No certificate has been revoked.</p>
            ) : (
              <table>
                <thead>
                  <tr>
                    <th scope="col">Serial</th>
                    <th scope="col">Subject</th>
                    <th scope="col">Device</th>
                    <th scope="col">Reason</th>
                    <th scope="col">Revoked</th>
                  </tr>
                </thead>
                <tbody>
                  {o.recentRevocations.map((r) => (
                    <tr key={r.serial}>
                      <td>
                        <a class="mono" href={`#/certificates/${r.serial}`}>
                          {r.serial.slice(0, 16)}…
                        </a>
                      </td>
                      <td>{r.subject}</td>
                      <td>{r.deviceId ? <a href={`#/devices/${encodeURIComponent(r.deviceId)}`}>{r.deviceId}</a> : '—'}</td>
                      <td>{r.reason}</td>
                      <td>{time(r.revokedAt)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            <h2>CA and CRL health</h2>
            <table>
              <thead>
                <tr>
                  <th scope="col">CA</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Valid until</th>
                  <th scope="col">Key</th>
                  <th scope="col">Newest CRL</th>
                  <th scope="col">Next update</th>
                </tr>
              </thead>
              <tbody>
                {o.cas.map((ca) => {
                  const crl = o.crls.find((c) => c.ca === ca.name && c.kind === 'base');
                  return (
                    <tr key={ca.name}>
                      <td>
                        <a href="#/cas">{ca.name}</a>
                      </td>
                      <td>{ca.kind}</td>
                      <td>{day(ca.notAfter)}</td>
                      <td>{ca.keyOnline ? 'online' : 'offline'}</td>
                      <td>{crl ? `#${crl.number}, ${crl.entries} entries` : 'none published'}</td>
                      <td class={crl?.status === 'overdue' ? 'bad' : ''}>{crl ? `${time(crl.nextUpdate)}${crl.status === 'overdue' ? ' (overdue)' : ''}` : '—'}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </>
        )}
      </Loading>
    </section>
  );
}
