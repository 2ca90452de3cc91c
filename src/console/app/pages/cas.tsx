import { get, type Ca, type CrlHealth } from '../api.js';
import { Loading, day, time, useLoad } from '../ui.js';

function Tree({ cas, parent, crls }: { cas: Ca[]; parent: string | null; crls: CrlHealth[] }) {
  const here = cas.filter((c) => c.parent === parent);
  if (here.length === 0) return null;
  return (
    <ul class="tree">
      {here.map((ca) => (
        <li key={ca.name}>
          <strong>{ca.name}</strong> <span class="muted">({ca.kind})</span> — {ca.subject}
          <div class="small">
            {ca.keyAlgorithm}, valid {day(ca.notBefore)} to {day(ca.notAfter)}, key {ca.keyOnline ? 'online' : 'offline'},{' '}
            {crls.filter((c) => c.ca === ca.name).length ? `${crls.filter((c) => c.ca === ca.name).length} CRL(s)` : 'no CRL yet'}
          </div>
          <Tree cas={cas} parent={ca.name} crls={crls} />
        </li>
      ))}
    </ul>
  );
}

export function CasPage() {
  const s = useLoad(() => Promise.all([get<Ca[]>('/api/v1/cas'), get<CrlHealth[]>('/api/v1/crls')]), []);
  return (
    <section aria-labelledby="cas-h">
      <h1 id="cas-h">Certificate authorities</h1>
      <Loading state={s}>
        {([cas, crls]) => (
          <>
            <h2>Hierarchy</h2>
            <Tree cas={cas} parent={null} crls={crls} />
            <h2>CRL status</h2>
            <table id="crl-status">
              <thead>
                <tr>
                  <th scope="col">CA</th>
                  <th scope="col">Partition</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Number</th>
                  <th scope="col">Entries</th>
                  <th scope="col">This update</th>
                  <th scope="col">Next update</th>
                  <th scope="col">Status</th>
                </tr>
              </thead>
              <tbody>
                {crls.map((c) => (
                  <tr key={`${c.ca}-${c.shard}-${c.kind}`}>
                    <td>{c.ca}</td>
                    <td>{c.shard || '—'}</td>
                    <td>{c.kind}</td>
                    <td>{c.number}</td>
                    <td>{c.entries}</td>
                    <td>{time(c.thisUpdate)}</td>
                    <td>{time(c.nextUpdate)}</td>
                    <td class={c.status === 'overdue' ? 'bad' : 'good'}>{c.status}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </Loading>
    </section>
  );
}
