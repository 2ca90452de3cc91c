import { useState } from 'preact/hooks';
import { REVOCATION_REASONS, post, type Cert, type Operator } from '../api.js';
import { NeedsPermission, Problem } from '../ui.js';

/**
 * Revokes one certificate with a reason; the API checks cert:revoke. Once
 * the certificate is `revoked`, only the outcome of this revocation stays.
 */
export function RevokeForm({ op, serial, revoked, onDone }: { op: Operator; serial: string; revoked: boolean; onDone: () => void }) {
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState<Cert>();
  const submit = async (e: Event) => {
    e.preventDefault();
    const reason = String(new FormData(e.currentTarget as HTMLFormElement).get('reason'));
    if (!confirm(`Revoke certificate ${serial} (${reason})? This cannot be undone.`)) return;
    setError(undefined);
    try {
      setDone(await post<Cert>(`/api/v1/certificates/${serial}/revoke`, { reason }));
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  const outcome = done && (
    <p role="status" class="success">
      Revoked ({done.revocationReason}); CRLs and OCSP report it from now on.
    </p>
  );
  if (revoked) return outcome || null;
  return (
    <section class="action" aria-labelledby={`revoke-${serial}`}>
      <h2 id={`revoke-${serial}`}>Revoke this certificate</h2>
      <NeedsPermission op={op} permission="cert:revoke" />
      <form onSubmit={submit}>
        <label>
          Reason
          <select name="reason">
            {REVOCATION_REASONS.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" class="danger">
          Revoke
        </button>
      </form>
      <Problem error={error} />
      {outcome}
    </section>
  );
}
