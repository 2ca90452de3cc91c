import { useState } from 'preact/hooks';
import { get, post, type Operator } from '../api.js';
import { Loading, NeedsPermission, Problem, time, useLoad } from '../ui.js';

interface Pending {
  id: string;
  deviceId: string;
  status: string;
  spkiSha256: string;
  createdAt: string;
}

export function EnrollmentsPage({ op }: { op: Operator }) {
  const s = useLoad(() => get<Pending[]>('/api/v1/enrollments?status=pending'), []);
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState<string>();
  const decide = async (p: Pending, verb: 'approve' | 'reject') => {
    setError(undefined);
    try {
      await post(`/api/v1/enrollments/${p.id}/${verb}`);
      setDone(`${verb === 'approve' ? 'Approved' : 'Rejected'} the enrollment of ${p.deviceId}: the device gets its answer when it asks again.`);
      s.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section aria-labelledby="enr-h">
      <h1 id="enr-h">Pending enrollments</h1>
      <NeedsPermission op={op} permission="enrollment:approve" />
      <Problem error={error} />
      {done && (
        <p role="status" class="success">
          {done}
        </p>
      )}
      <Loading state={s}>
        {(list) =>
          list.length === 0 ? (
            <p>No enrollment is waiting for approval.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">Device</th>
                  <th scope="col">Asked</th>
                  <th scope="col">Key (SHA-256 of SPKI)</th>
                  <th scope="col">Decision</th>
                </tr>
              </thead>
              <tbody>
                {list.map((p) => (
                  <tr key={p.id}>
                    <td>
                      <a href={`#/devices/${encodeURIComponent(p.deviceId)}`}>{p.deviceId}</a>
                    </td>
                    <td>{time(p.createdAt)}</td>
                    <td class="mono small">{p.spkiSha256.slice(0, 32)}…</td>
                    <td>
                      <button type="button" onClick={() => decide(p, 'approve')} aria-label={`Approve the enrollment of ${p.deviceId}`}>
                        Approve
                      </button>{' '}
                      <button type="button" class="danger" onClick={() => decide(p, 'reject')} aria-label={`Reject the enrollment of ${p.deviceId}`}>
                        Reject
                      </button>
                    </td>
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
