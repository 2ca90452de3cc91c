/**
 * The checks a request passes before anything is signed: the key, the
 * subject and the names against the profile. Pure functions, shared by the
 * authority's library path and the issuance fast path (also in its worker
 * threads), so both refuse the same requests with the same errors.
 */
import { ProblemError } from '../errors.js';
import { keyInfoName, type KeyInfo } from '../x509/algorithms.js';
import type { ParsedCsr } from '../x509/csr.js';
import { formatSan, type San } from '../x509/general_names.js';
import { formatDn, type DnAttribute } from '../x509/names.js';
import type { Profile } from './profiles.js';

/** RFC 8813 / RFC 8410: encipherment usages are only for RSA keys. */
export function usagesFor(profile: Profile, key: { key: KeyInfo }): string[] {
  return key.key.type === 'rsa' ? profile.keyUsage : profile.keyUsage.filter((u) => u !== 'keyEncipherment' && u !== 'dataEncipherment');
}

export function checkKey(profile: Profile, name: string, csr: Pick<ParsedCsr, 'key' | 'spkiSha256'>, caSpkiSha256: string): void {
  const alg = keyInfoName(csr.key);
  if (!(profile.keyAlgorithms as string[]).includes(alg)) {
    throw new ProblemError('bad_key', `profile "${name}" does not allow ${alg} keys (allowed: ${profile.keyAlgorithms.join(', ')})`);
  }
  if (csr.spkiSha256 === caSpkiSha256) throw new ProblemError('bad_key', 'the CSR carries the CA\'s own public key');
}

export function checkSubject(profile: Profile, name: string, subject: DnAttribute[]): void {
  const allowed = new Set(profile.subject.allowed);
  const bad = subject.filter((a) => !allowed.has(a.type)).map((a) => a.type);
  if (bad.length) throw new ProblemError('policy_violation', `profile "${name}" does not allow ${[...new Set(bad)].join(', ')} in the subject (allowed: ${profile.subject.allowed.join(', ')})`);
  for (const r of profile.subject.required ?? []) {
    if (!subject.some((a) => a.type === r)) throw new ProblemError('policy_violation', `profile "${name}" requires ${r} in the subject (got "${formatDn(subject)}")`);
  }
}

export function checkSans(profile: Profile, name: string, sans: San[]): void {
  const rules = profile.san;
  for (const s of sans) {
    if (!rules.allowed.includes(s.type)) throw new ProblemError('policy_violation', `profile "${name}" does not allow ${s.type} names (${formatSan(s)})`);
    const pats = rules.patterns?.[s.type];
    if (pats?.length && !pats.some((p) => new RegExp(`^(?:${p})$`, 'i').test(s.value))) {
      throw new ProblemError('policy_violation', `${formatSan(s)} does not match the ${s.type} patterns of profile "${name}"`);
    }
  }
  if (rules.min !== undefined && sans.length < rules.min) throw new ProblemError('policy_violation', `profile "${name}" needs at least ${rules.min} subject alternative name(s)`);
  if (rules.max !== undefined && sans.length > rules.max) throw new ProblemError('policy_violation', `profile "${name}" allows at most ${rules.max} subject alternative name(s), got ${sans.length}`);
}

export function dedupeSans(sans: San[]): San[] {
  const seen = new Set<string>();
  return sans.filter((s) => {
    const k = formatSan(s);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
