import { get, qs, type AuditEntry } from '../api.js';
import { AuditTable, Loading, time, useLoad } from '../ui.js';

interface ChainCheck {
  ok: boolean;
  entries: number;
  brokenAt: number | null;
  reason: string | null;
  checkedAt: string;
}

const PAGE = 100;

export function AuditPage({ action }: { action: string }) {
  const check = useLoad(() => get<ChainCheck>('/api/v1/audit/verify'), []);
  const list = useLoad(async () => {
    const head = (await get<ChainCheck>('/api/v1/audit/verify')).entries;
    const entries = await get<AuditEntry[]>(`/api/v1/audit${qs({ after: action ? undefined : Math.max(0, head - PAGE), action: action || undefined, limit: 1000 })}`);
    return entries.slice(-PAGE).reverse();
  }, [action]);
  const submit = (e: Event) => {
    e.preventDefault();
    location.hash = `#/audit${qs({ action: String(new FormData(e.currentTarget as HTMLFormElement).get('action') ?? '').trim() })}`;
  };
  return (
    <section aria-labelledby="audit-h">
      <h1 id="audit-h">Audit log</h1>
      <Loading state={check}>
        {(c) => (
          <p id="chain-status" role="status" class={c.ok ? 'success' : 'problem'}>
            {c.ok ? `Hash chain intact: ${c.entries} entries checked` : `HASH CHAIN BROKEN at entry ${c.brokenAt}: ${c.reason}`} ({time(c.checkedAt)}).
          </p>
        )}
      </Loading>
      <form class="filters" onSubmit={submit}>
        <label>
          Action
          <input name="action" value={action} placeholder="e.g. certificate.revoke" />
        </label>
        <button type="submit">Filter</button>
      </form>
      <Loading state={list}>
        {(entries) => <AuditTable entries={entries} caption={`Newest ${entries.length} entries first`} withTarget />}
      </Loading>
    </section>
  );
}
