/**
 * Peer authorisation from the certificate alone: a peer is accepted only if
 *   1. its chain validates to a trust anchor (RFC 5280 §6.1, the parts that
 *      matter here: signatures, validity, CA flag, keyCertSign, pathLen,
 *      extended key usage, unknown critical extensions),
 *   2. no certificate of the chain is on its issuer's CRL (from the cache),
 *   3. it names an operational domain (URI SAN urn:fleetpki:domain:<d>) that
 *      we are in too, and its anchor may speak for every domain it names.
 * The fleet's own roots speak for every domain; another organisation's root
 * on the trust list only for the domains listed with it (cross-organisation
 * trust). Pure: the caller passes the time, the anchors and the CRLs.
 */
import { ProblemError } from '../errors.js';
import type { CertInfo } from '../x509/cert_info.js';
import { parseCertificate } from '../x509/cert_info.js';
import { crlUrlsOf, deviceIdOf, domainsOf, isSelfIssued, issuedBy, sameBytes, type ParsedCrl } from './certs.js';

export interface TrustAnchor {
  /** For messages and status: "fleet" or the trust list entry's name. */
  name: string;
  cert: CertInfo;
  /** "*": any domain (the fleet's own roots); else the domains it may speak for. */
  domains: '*' | string[];
}

/** Finds the CRL that covers `cert`, issued and signed by `issuer`; undefined if none is cached. */
export type CrlLookup = (cert: CertInfo, issuer: CertInfo) => ParsedCrl | undefined;

export interface PeerPolicy {
  anchors: TrustAnchor[];
  /** CA certificates a peer may chain through without sending them (our cacerts). */
  intermediates: CertInfo[];
  crls: CrlLookup;
  /** Our own operational domains (from our certificate). */
  domains: string[];
  now: Date;
  /** Which certificates must have a CRL: every one below the anchor (default), the leaf only, or none. */
  requireCrl?: 'all' | 'leaf' | 'none';
  /** Accept a CRL this long past its nextUpdate (default 0: an expired CRL refuses everyone, as strict relying parties do). */
  crlGraceSeconds?: number;
}

/** Why a peer was refused: stable, for logs, metrics and tests. */
export type PeerRefusal =
  | 'no_certificate'
  | 'bad_certificate'
  | 'untrusted'
  | 'expired'
  | 'not_yet_valid'
  | 'not_a_ca'
  | 'path_too_long'
  | 'wrong_purpose'
  | 'unknown_critical_extension'
  | 'revoked'
  | 'no_crl'
  | 'crl_expired'
  | 'no_domain'
  | 'domain_out_of_scope'
  | 'wrong_domain';

export interface AuthorizedPeer {
  /** CN of the peer's certificate: the device id for fleet devices. */
  id: string;
  serial: string;
  subject: string;
  domains: string[];
  /** The domains we share with it. */
  sharedDomains: string[];
  anchor: string;
  notAfter: Date;
  /** Leaf first, anchor last. */
  path: CertInfo[];
}

export function refuse(reason: PeerRefusal, detail: string, extra: Record<string, unknown> = {}): ProblemError {
  return new ProblemError('forbidden', `peer refused (${reason}): ${detail}`, { reason, ...extra });
}

export function refusalOf(e: unknown): PeerRefusal | undefined {
  return e instanceof ProblemError ? (e.extra?.reason as PeerRefusal | undefined) : undefined;
}

const EKU = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2', any: '2.5.29.37.0' };
/** Extensions this check understands; others, when critical, refuse the certificate (RFC 5280 §4.2). */
const KNOWN_EXTENSIONS = new Set([
  '2.5.29.14', '2.5.29.15', '2.5.29.17', '2.5.29.19', '2.5.29.31', '2.5.29.32', '2.5.29.35', '2.5.29.37', '1.3.6.1.5.5.7.1.1',
  // Name constraints are enforced by OpenSSL during the TLS handshake (the helpers in tls.ts pass our anchors as `ca`).
  '2.5.29.30',
]);
const MAX_DEPTH = 6;

/**
 * Authorises a peer from its certificate chain (leaf first, as the peer sent
 * it or as the TLS layer built it). `role` is what the peer acts as: a TLS
 * client needs clientAuth, a server serverAuth (when it has an EKU at all).
 * Throws a ProblemError 'forbidden' whose extra.reason is a PeerRefusal.
 */
export function authorizePeer(chain: Array<Uint8Array | CertInfo>, policy: PeerPolicy, role: 'client' | 'server'): AuthorizedPeer {
  if (chain.length === 0) throw refuse('no_certificate', 'the peer presented no certificate');
  let certs: CertInfo[];
  try {
    certs = chain.map((c) => (c instanceof Uint8Array ? parseCertificate(c) : c));
  } catch (e) {
    throw refuse('bad_certificate', `the peer's certificate cannot be read: ${(e as Error).message}`);
  }
  const leaf = certs[0];
  const now = policy.now.getTime();
  const who = `${deviceIdOf(leaf)} (serial ${leaf.serial})`;

  // 1. Build the path up to an anchor, trying the certificates we know.
  const { path, anchor } = buildPath(leaf, [...certs.slice(1), ...policy.intermediates], policy.anchors, who);
  for (const [i, c] of path.entries()) {
    if (c.notBefore.getTime() > now) throw refuse('not_yet_valid', `${i === 0 ? who : c.subjectText} is not valid before ${c.notBefore.toISOString()}`);
    if (c.notAfter.getTime() < now) throw refuse('expired', `${i === 0 ? who : c.subjectText} expired at ${c.notAfter.toISOString()}`);
    const unknown = c.extensions.find((e) => e.critical && !KNOWN_EXTENSIONS.has(e.oid));
    if (unknown) throw refuse('unknown_critical_extension', `${i === 0 ? who : c.subjectText} has a critical extension ${unknown.oid} this check does not process`);
    if (i > 0) {
      // §4.2.1.9 / §4.2.1.3: issuers must be CAs allowed to sign certificates.
      if (!c.isCa || (c.keyUsage.length > 0 && !c.keyUsage.includes('keyCertSign'))) throw refuse('not_a_ca', `${c.subjectText} signed ${path[i - 1].subjectText} but is not a CA`);
      // pathLen counts the non-self-issued intermediates below this CA.
      const below = path.slice(1, i).filter((x) => !isSelfIssued(x)).length;
      if (c.pathLen !== undefined && below > c.pathLen) throw refuse('path_too_long', `${c.subjectText} allows ${c.pathLen} intermediate CAs below it, the chain has ${below}`);
    }
  }
  if (leaf.isCa) throw refuse('wrong_purpose', `${who} is a CA certificate, not an end entity`);
  const want = role === 'client' ? EKU.clientAuth : EKU.serverAuth;
  if (leaf.extendedKeyUsage.length > 0 && !leaf.extendedKeyUsage.includes(want) && !leaf.extendedKeyUsage.includes(EKU.any)) {
    throw refuse('wrong_purpose', `${who} is not for TLS ${role} authentication (extendedKeyUsage lacks ${role === 'client' ? 'clientAuth' : 'serverAuth'})`);
  }
  if (leaf.keyUsage.length > 0 && !leaf.keyUsage.includes('digitalSignature')) throw refuse('wrong_purpose', `${who} may not sign (keyUsage lacks digitalSignature)`);

  // 2. Revocation, from the cached CRLs (RFC 5280 §6.3).
  const requireCrl = policy.requireCrl ?? 'all';
  const grace = (policy.crlGraceSeconds ?? 0) * 1000;
  for (let i = 0; i < path.length - 1; i++) {
    const c = path[i];
    const crl = policy.crls(c, path[i + 1]);
    const required = requireCrl === 'all' || (requireCrl === 'leaf' && i === 0);
    const name = i === 0 ? who : c.subjectText;
    if (!crl) {
      if (required) throw refuse('no_crl', `no CRL of ${path[i + 1].subjectText} is cached to check ${name}`, { crlUrls: crlUrlsOf(c) });
      continue;
    }
    if (crl.nextUpdate && crl.nextUpdate.getTime() + grace < now) {
      if (required) throw refuse('crl_expired', `the cached CRL of ${path[i + 1].subjectText} expired at ${crl.nextUpdate.toISOString()}`, { crlUrls: crlUrlsOf(c) });
      continue;
    }
    if (crl.revoked.has(c.serial)) throw refuse('revoked', `${name} is revoked (CRL ${crl.number ?? '?'} of ${path[i + 1].subjectText})`);
  }

  // 3. The operational domain.
  const domains = domainsOf(leaf);
  if (domains.length === 0) throw refuse('no_domain', `${who} names no operational domain (URI SAN urn:fleetpki:domain:...)`);
  if (anchor.domains !== '*') {
    const scope = anchor.domains;
    const outside = domains.filter((d) => !scope.includes(d));
    if (outside.length) throw refuse('domain_out_of_scope', `${who} chains to ${anchor.name}, which may speak only for ${scope.join(', ') || 'no domain'}, not for ${outside.join(', ')}`);
  }
  const shared = domains.filter((d) => policy.domains.includes(d));
  if (shared.length === 0) throw refuse('wrong_domain', `${who} is in ${domains.join(', ')}, not in our ${policy.domains.join(', ') || '(no domain)'}`);

  return { id: deviceIdOf(leaf), serial: leaf.serial, subject: leaf.subjectText, domains, sharedDomains: shared, anchor: anchor.name, notAfter: leaf.notAfter, path };
}

function buildPath(leaf: CertInfo, pool: CertInfo[], anchors: TrustAnchor[], who: string): { path: CertInfo[]; anchor: TrustAnchor } {
  const path = [leaf];
  let cur = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    // The peer may send the anchor itself: it is only trusted as one of ours.
    const exact = anchors.find((a) => sameBytes(a.cert.der, cur.der));
    if (exact && cur !== leaf) return { path, anchor: exact };
    const anchor = anchors.find((a) => issuedBy(cur, a.cert));
    if (anchor) {
      path.push(anchor.cert);
      return { path, anchor };
    }
    const next = pool.find((c) => !path.some((p) => sameBytes(p.der, c.der)) && !isSelfIssued(c) && issuedBy(cur, c));
    if (!next) break;
    path.push(next);
    cur = next;
  }
  throw refuse('untrusted', `${who} does not chain to a trusted root (issuer ${cur.issuerText})`);
}
