/** Small shared pieces: loading data, showing refusals, dates, the permission hint. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, get, type AuditEntry, type Operator } from './api.js';

export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): { data?: T; error?: unknown; reload: () => void } {
  const [state, setState] = useState<{ data?: T; error?: unknown }>({});
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (data) => live && setState({ data }),
      (error) => live && setState({ error }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { ...state, reload: useCallback(() => setTick((t) => t + 1), []) };
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return `${e.status === 403 ? 'Refused' : 'Error'} (${e.code}): ${e.detail}`;
  return e instanceof Error ? e.message : String(e);
}

export function Problem({ error }: { error?: unknown }) {
  if (!error) return null;
  return (
    <p class="problem" role="alert">
      {errorText(error)}
    </p>
  );
}

export function Loading<T>({ state, children }: { state: { data?: T; error?: unknown }; children: (data: T) => ComponentChildren }) {
  if (state.error) return <Problem error={state.error} />;
  if (state.data === undefined) return <p aria-live="polite">Loading…</p>;
  return <>{children(state.data)}</>;
}

export const day = (iso: string) => iso.slice(0, 10);
export const time = (iso: string | null) => (iso ? iso.slice(0, 19).replace('T', ' ') + ' UTC' : '—');

/** Says when the operator's role lacks what an action needs; the server refuses it either way. */
export function NeedsPermission({ op, permission }: { op: Operator; permission: string }) {
  if (op.permissions.includes(permission)) return null;
  return (
    <p class="hint">
      Your role ({op.role}) does not include <code>{permission}</code>: the server will refuse this action.
    </p>
  );
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge state-${state}`}>{state}</span>;
}

/** Audit entries as a table: the audit page (with targets) and a device's history. */
export function AuditTable({ entries, caption, id, withTarget }: { entries: AuditEntry[]; caption?: string; id?: string; withTarget?: boolean }) {
  return (
    <table id={id}>
      {caption ? <caption>{caption}</caption> : null}
      <thead>
        <tr>
          <th scope="col">#</th>
          <th scope="col">When</th>
          <th scope="col">Actor</th>
          <th scope="col">Action</th>
          {withTarget ? <th scope="col">Target</th> : null}
          <th scope="col">Details</th>
        </tr>
      </thead>
      <tbody>
        {entries.map((e) => (
          <tr key={e.seq}>
            <td>{e.seq}</td>
            <td>{time(e.at)}</td>
            <td>{e.actor}</td>
            <td>{e.action}</td>
            {withTarget ? <td class="mono small">{e.target ?? '—'}</td> : null}
            <td class="mono small">{JSON.stringify(e.details)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The named fields of a form that were filled in, trimmed (the API takes absent, not empty, for "not given"). */
export function filledFields(f: FormData, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of names) {
    const v = String(f.get(k) ?? '').trim();
    if (v) out[k] = v;
  }
  return out;
}

/** A "profile" field listing the profiles in force (device-tls first chosen). */
export function ProfileSelect({ label }: { label: string }) {
  const profiles = useLoad(() => get<Record<string, unknown>>('/api/v1/profiles'), []);
  return (
    <label>
      {label}
      <select name="profile" required>
        {Object.keys(profiles.data ?? { 'device-tls': 1 }).map((p) => (
          <option key={p} value={p} selected={p === 'device-tls'}>
            {p}
          </option>
        ))}
      </select>
    </label>
  );
}
