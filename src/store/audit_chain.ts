import { createHash } from 'node:crypto';
import type { AuditEntry, Store } from './store.js';

/** The hash that precedes the first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * JSON with object keys sorted at every level, so the same entry always hashes
 * the same way whichever backend stored it.
 */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v instanceof Date) return JSON.stringify(v.toISOString());
  const keys = Object.keys(v as object).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** hash_n = sha256(hash_{n-1} || canonical(seq, at, actor, action, target, details)). */
export function auditEntryHash(prevHash: string, e: Omit<AuditEntry, 'hash' | 'prevHash'>): string {
  const body = canonicalJson({
    seq: e.seq,
    at: e.at.getTime(),
    actor: e.actor,
    action: e.action,
    target: e.target ?? null,
    details: e.details,
  });
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex');
}

export interface ChainCheck {
  ok: boolean;
  entries: number;
  /** First sequence number where the chain breaks, with the reason. */
  brokenAt?: number;
  reason?: string;
}

/** A head of the log remembered from before ("seq:hash", e.g. from `fleetpki audit head`). */
export interface AuditAnchor {
  seq: number;
  hash: string;
}

export function parseAnchor(s: string): AuditAnchor | undefined {
  const m = /^(\d{1,15}):([0-9a-f]{64})$/.exec(s.trim().toLowerCase());
  return m ? { seq: Number(m[1]), hash: m[2] } : undefined;
}

/**
 * Checks a complete, seq-ordered audit log from its first entry. The chain
 * alone catches an entry edited, inserted or deleted before the last one;
 * entries cut off or appended at the end are caught against anchors (heads
 * remembered earlier, kept outside the database): each must still be in
 * the log with the same hash.
 */
export function verifyAuditChain(entries: Iterable<AuditEntry>, anchors: readonly AuditAnchor[] = []): ChainCheck {
  let prev = GENESIS_HASH;
  let expectSeq = 1;
  let n = 0;
  for (const e of entries) {
    n++;
    if (e.seq !== expectSeq) return { ok: false, entries: n, brokenAt: e.seq, reason: `expected entry ${expectSeq}, found ${e.seq} (an entry was deleted or inserted)` };
    if (e.prevHash !== prev) return { ok: false, entries: n, brokenAt: e.seq, reason: 'prevHash does not match the previous entry' };
    if (auditEntryHash(prev, e) !== e.hash) return { ok: false, entries: n, brokenAt: e.seq, reason: 'entry content does not match its hash (edited)' };
    const a = anchors.find((x) => x.seq === e.seq);
    if (a && a.hash !== e.hash) return { ok: false, entries: n, brokenAt: e.seq, reason: `entry ${e.seq} is not the one anchored (${a.hash.slice(0, 16)}…): the log was rewritten from here` };
    prev = e.hash;
    expectSeq++;
  }
  const missing = anchors.filter((a) => a.seq > n).sort((x, y) => x.seq - y.seq)[0];
  if (missing) return { ok: false, entries: n, brokenAt: missing.seq, reason: `the log ends at entry ${n} but entry ${missing.seq} was anchored (entries were deleted from the end)` };
  return { ok: true, entries: n };
}

/** The whole stored log, oldest first, read in pages. */
export async function readAuditLog(store: Store): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  for (let after = 0; ; ) {
    const page = await store.listAudit({ afterSeq: after, limit: 1000 });
    entries.push(...page);
    if (page.length < 1000) return entries;
    after = page[page.length - 1].seq;
  }
}

/** The check `fleetpki audit verify` and GET /api/v1/audit/verify make: the whole stored log against its chain (and anchors). */
export async function verifyStoredAuditChain(store: Store, anchors: readonly AuditAnchor[] = []): Promise<ChainCheck> {
  return verifyAuditChain(await readAuditLog(store), anchors);
}
