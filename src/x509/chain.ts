/**
 * Certification path validation for signed messages that arrive without
 * TLS, such as CMP requests whose protection certificate must chain to our
 * CAs or a trusted manufacturer CA (RFC 9483 §3.2). From the leaf through
 * the intermediates offered to a trust anchor: every signature verifies,
 * every certificate is valid at `at`, every issuer is a CA allowed to sign
 * certificates (RFC 5280 §6.1, without policies or name constraints).
 * Revocation is the caller's business: certificates of our own CAs are
 * checked against the store, manufacturer certificates are not (as in EST,
 * where TLS does the same path check).
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { ProblemError } from '../errors.js';
import type { CertInfo } from './cert_info.js';

const MAX_DEPTH = 6;

export interface ValidPath {
  /** Leaf first, anchor last. */
  path: CertInfo[];
  anchor: CertInfo;
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

function signedBy(cert: CertInfo, issuer: CertInfo): boolean {
  if (!same(cert.issuerDer, issuer.subjectDer)) return false;
  try {
    const key = createPublicKey({ key: Buffer.from(issuer.spki), format: 'der', type: 'spki' });
    return new X509Certificate(Buffer.from(cert.der)).verify(key);
  } catch {
    return false;
  }
}

function canIssue(ca: CertInfo, below: number): boolean {
  if (!ca.isCa) return false;
  if (ca.keyUsage.length && !ca.keyUsage.includes('keyCertSign')) return false;
  // `below`: CA certificates between this one and the leaf (RFC 5280 §4.2.1.9).
  return ca.pathLen === undefined || below <= ca.pathLen;
}

const validAt = (c: CertInfo, at: Date) => c.notBefore <= at && at <= c.notAfter;

/**
 * The path from `leaf` to one of `anchors`, or unauthorized with the reason.
 * Self-signed anchors are trusted as given; `intermediates` are only
 * candidates (a client may send extra or unrelated certificates).
 */
export function validatePath(leaf: CertInfo, intermediates: readonly CertInfo[], anchors: readonly CertInfo[], at: Date): ValidPath {
  if (!validAt(leaf, at)) throw new ProblemError('unauthorized', `the certificate ${leaf.subjectText} is expired or not yet valid`);
  const walk = (cert: CertInfo, path: CertInfo[]): ValidPath | undefined => {
    const below = path.length - 1;
    for (const a of anchors) {
      if (validAt(a, at) && canIssue(a, below) && signedBy(cert, a)) return { path: [...path, a], anchor: a };
    }
    if (path.length >= MAX_DEPTH) return undefined;
    for (const i of intermediates) {
      if (path.some((p) => same(p.der, i.der)) || !validAt(i, at) || !canIssue(i, below) || !signedBy(cert, i)) continue;
      const found = walk(i, [...path, i]);
      if (found) return found;
    }
    return undefined;
  };
  const found = walk(leaf, [leaf]);
  if (!found) throw new ProblemError('unauthorized', `the certificate ${leaf.subjectText} (issuer ${leaf.issuerText}) does not chain to a trusted CA`);
  return found;
}
