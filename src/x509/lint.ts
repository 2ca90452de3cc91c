/**
 * Pre-issuance lints (after Boulder's "lint before signing"): the encoded
 * TBSCertificate is parsed back and checked against RFC 5280 and the issuer's
 * own constraints before the CA key signs anything. Each lint cites its rule.
 */
import { isIP } from 'node:net';
import type { CertInfo } from './cert_info.js';
import { parseCidr } from './extensions.js';
import type { San } from './general_names.js';

export interface LintFinding {
  lint: string;
  message: string;
}

type Lint = (c: CertInfo, issuer: CertInfo | undefined) => string | undefined;

const equalBytes = (a?: Uint8Array, b?: Uint8Array) => !!a && !!b && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

const LINTS: Record<string, Lint> = {
  // §4.1.2.2: positive, at most 20 octets.
  serial_positive_max_20_octets: (c) => {
    const bytes = Buffer.from(c.serial, 'hex');
    if (bytes.length > 20) return 'serial number is longer than 20 octets';
    if (bytes[0] & 0x80) return 'serial number is negative';
    if (bytes.every((b) => b === 0)) return 'serial number is zero';
  },
  // §4.1.2.5
  validity_ordered: (c) => (c.notBefore.getTime() >= c.notAfter.getTime() ? 'notBefore is not before notAfter' : undefined),
  validity_whole_seconds: (c) => (c.notBefore.getUTCMilliseconds() || c.notAfter.getUTCMilliseconds() ? 'validity has fractional seconds' : undefined),
  validity_within_issuer: (c, i) => (i && c.notAfter.getTime() > i.notAfter.getTime() ? 'certificate outlives its issuer' : undefined),
  // §4.1.2.4: the issuer field is the issuer's subject, byte for byte.
  issuer_matches_issuer_subject: (c, i) => (i && !equalBytes(c.issuerDer, i.subjectDer) ? 'issuer name differs from the issuer certificate subject' : undefined),
  // §4.2: a certificate MUST NOT include more than one instance of an extension.
  no_duplicate_extensions: (c) => {
    const seen = new Set<string>();
    for (const e of c.extensions) {
      if (seen.has(e.oid)) return `extension ${e.oid} appears twice`;
      seen.add(e.oid);
    }
  },
  // §4.1.2.6 + §4.2.1.6: an empty subject needs a critical SAN.
  empty_subject_needs_critical_san: (c) => {
    if (c.subject.length > 0) return;
    const san = c.extensions.find((e) => e.oid === '2.5.29.17');
    if (!san) return 'subject is empty and there is no subjectAltName';
    if (!san.critical) return 'subject is empty but subjectAltName is not critical';
  },
  // §4.2.1.9
  ca_basic_constraints_critical: (c) => {
    const bc = c.extensions.find((e) => e.oid === '2.5.29.19');
    if (c.isCa && !bc?.critical) return 'CA certificate without a critical basicConstraints';
  },
  // §4.2.1.3: keyCertSign iff cA.
  key_cert_sign_iff_ca: (c) => {
    const kcs = c.keyUsage.includes('keyCertSign');
    if (c.isCa && !kcs) return 'CA certificate without keyCertSign';
    if (!c.isCa && kcs) return 'keyCertSign in a certificate that is not a CA';
  },
  key_usage_present: (c) => (c.keyUsage.length === 0 ? 'keyUsage is missing or empty' : undefined),
  // §4.2.1.9: pathLenConstraint only meaningful with keyCertSign.
  path_len_only_for_ca: (c) => (c.pathLen !== undefined && !c.isCa ? 'pathLenConstraint without cA' : undefined),
  // §6.1.4 (k)/(m): the issuer's path length bounds the CAs below it.
  issuer_path_length: (c, i) => {
    if (!i || !c.isCa || i.pathLen === undefined) return;
    if (i.pathLen === 0) return 'the issuer may not certify CAs (pathLenConstraint 0)';
    if (c.pathLen === undefined || c.pathLen >= i.pathLen) return `pathLenConstraint must be below the issuer's (${i.pathLen})`;
  },
  issuer_is_ca: (c, i) => (i && (!i.isCa || !i.keyUsage.includes('keyCertSign')) ? 'the issuer certificate is not a CA with keyCertSign' : undefined),
  // §4.2.1.1 / §4.2.1.2
  aki_present: (c, i) => (i && !c.aki ? 'authorityKeyIdentifier missing' : undefined),
  aki_matches_issuer_ski: (c, i) => (i && i.ski && c.aki && !equalBytes(c.aki, i.ski) ? 'authorityKeyIdentifier differs from the issuer subjectKeyIdentifier' : undefined),
  ca_ski_present: (c) => (c.isCa && !c.ski ? 'CA certificate without subjectKeyIdentifier' : undefined),
  // RFC 8813 §3: EC keys MUST NOT assert keyEncipherment or dataEncipherment.
  ec_key_usage: (c) =>
    c.key.type === 'ec' && (c.keyUsage.includes('keyEncipherment') || c.keyUsage.includes('dataEncipherment')) ? 'EC key with keyEncipherment/dataEncipherment' : undefined,
  // RFC 8410 §5: Ed25519 keys sign only.
  eddsa_key_usage: (c) => {
    if (c.key.type !== 'ed25519') return;
    const bad = c.keyUsage.filter((u) => !['digitalSignature', 'nonRepudiation', 'keyCertSign', 'cRLSign'].includes(u));
    if (bad.length) return `Ed25519 key with ${bad.join(', ')}`;
  },
  // RFC 6960 §4.2.2.2.1: nocheck is for OCSP signers only.
  ocsp_nocheck_only_for_ocsp_signing: (c) =>
    c.extensions.some((e) => e.oid === '1.3.6.1.5.5.7.48.1.5') && !c.extendedKeyUsage.includes('1.3.6.1.5.5.7.3.9') ? 'id-pkix-ocsp-nocheck without id-kp-OCSPSigning' : undefined,
  // §4.2.1.10: names under a constrained issuer stay inside its subtrees.
  issuer_name_constraints: (c, i) => {
    if (!i?.nameConstraints) return;
    for (const san of c.sans) {
      const v = checkNameConstraints(san, i.nameConstraints);
      if (v) return v;
    }
  },
};

export function lintCertificate(c: CertInfo, issuer: CertInfo | undefined): LintFinding[] {
  const out: LintFinding[] = [];
  for (const [lint, fn] of Object.entries(LINTS)) {
    const message = fn(c, issuer);
    if (message) out.push({ lint, message });
  }
  return out;
}

type Subtree = { tag: number; value: Uint8Array };

/** Tag numbers of GeneralName alternatives. */
const TAG_OF: Record<San['type'], number> = { email: 1, dns: 2, uri: 6, ip: 7 };

function checkNameConstraints(san: San, nc: NonNullable<CertInfo['nameConstraints']>): string | undefined {
  const tag = TAG_OF[san.type];
  const matches = (t: Subtree) => t.tag === tag && nameWithin(san, t.value);
  if (nc.excluded.some(matches)) return `${san.type}:${san.value} is in an excluded subtree of the issuer`;
  const permittedOfType = nc.permitted.filter((t) => t.tag === tag);
  if (permittedOfType.length && !permittedOfType.some(matches)) return `${san.type}:${san.value} is outside the issuer's permitted subtrees`;
}

function hostWithin(host: string, constraint: string): boolean {
  host = host.toLowerCase();
  constraint = constraint.toLowerCase();
  if (constraint === '') return true;
  if (constraint.startsWith('.')) return host.endsWith(constraint);
  return host === constraint || host.endsWith(`.${constraint}`);
}

function nameWithin(san: San, raw: Uint8Array): boolean {
  const text = Buffer.from(raw).toString('latin1');
  switch (san.type) {
    case 'dns':
      return hostWithin(san.value, text);
    case 'email': {
      // §4.2.1.10: a mailbox, a host (all mailboxes there) or ".domain".
      const at = san.value.lastIndexOf('@');
      if (text.includes('@')) return san.value.toLowerCase() === text.toLowerCase();
      const host = san.value.slice(at + 1).toLowerCase();
      return text.startsWith('.') ? host.endsWith(text.toLowerCase()) : host === text.toLowerCase();
    }
    case 'uri': {
      let host = '';
      try {
        host = new URL(san.value).hostname;
      } catch {
        return false;
      }
      if (!host) return false; // URNs have no host: they cannot satisfy a host constraint
      return text.startsWith('.') ? host.toLowerCase().endsWith(text.toLowerCase()) : host.toLowerCase() === text.toLowerCase();
    }
    case 'ip': {
      if (!isIP(san.value)) return false;
      const addr = parseCidr(san.value).address;
      const half = raw.length / 2;
      if (addr.length !== half) return false;
      for (let i = 0; i < half; i++) if ((addr[i] & raw[half + i]) !== (raw[i] & raw[half + i])) return false;
      return true;
    }
  }
}
