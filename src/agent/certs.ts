/**
 * What the agent reads from certificates and CRLs: distribution points, the
 * operational domain, issuer links, and CRLs parsed by walking the DER (a CRL
 * of many thousand entries parses in milliseconds; the ASN.1 library would
 * build an object per entry).
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CRLDistributionPoints, id_ce_cRLDistributionPoints } from '@peculiar/asn1-x509';
import * as der from '../asn1/der.js';
import { ProblemError } from '../errors.js';
import { publicKeyFromSpki, verifySignature } from '../x509/algorithms.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import { pemDecodeAll, pemEncode } from '../x509/pem.js';

/** RFC 5280 §4.2.1.6 URI SAN naming the operational domain (as the registry certifies it). */
export const DOMAIN_URI_PREFIX = 'urn:fleetpki:domain:';

export function domainsOf(c: CertInfo): string[] {
  return c.sans.filter((s) => s.type === 'uri' && s.value.toLowerCase().startsWith(DOMAIN_URI_PREFIX)).map((s) => s.value.slice(DOMAIN_URI_PREFIX.length));
}

export const deviceIdOf = (c: CertInfo) => c.subject.find((a) => a.type === 'CN')?.value ?? c.subjectText;

/** RFC 5280 §4.2.1.13: the http(s) fullName URIs of the CRL distribution points. */
export function crlUrlsOf(c: CertInfo): string[] {
  const ext = c.extensions.find((e) => e.oid === id_ce_cRLDistributionPoints);
  if (!ext) return [];
  const out: string[] = [];
  try {
    for (const dp of AsnConvert.parse(ext.value, CRLDistributionPoints)) {
      for (const gn of dp.distributionPoint?.fullName ?? []) if (gn.uniformResourceIdentifier && /^https?:\/\//i.test(gn.uniformResourceIdentifier)) out.push(gn.uniformResourceIdentifier);
    }
  } catch {
    return [];
  }
  return out;
}

export const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

export function isSelfIssued(c: CertInfo): boolean {
  return sameBytes(c.subjectDer, c.issuerDer);
}

/** Whether `child` names `issuer` as its issuer and its signature verifies with the issuer's key. */
export function issuedBy(child: CertInfo, issuer: CertInfo): boolean {
  if (!sameBytes(child.issuerDer, issuer.subjectDer)) return false;
  try {
    return new X509Certificate(Buffer.from(child.der)).verify(createPublicKey({ key: Buffer.from(issuer.spki), format: 'der', type: 'spki' }));
  } catch {
    return false;
  }
}

export function pemOfCerts(ders: readonly Uint8Array[]): string {
  return ders.map((d) => pemEncode('CERTIFICATE', d)).join('');
}

/** Every certificate in a PEM bundle; throws with `what` in the message. */
export function certsOfPem(text: string, what: string): CertInfo[] {
  const blocks = pemDecodeAll(text).filter((b) => b.label === 'CERTIFICATE');
  try {
    return blocks.map((b) => parseCertificate(b.der));
  } catch (e) {
    throw new ProblemError('bad_request', `${what}: ${(e as Error).message}`);
  }
}

// ------------------------------------------------------------------- CRLs

export interface ParsedCrl {
  der: Uint8Array;
  issuerDer: Uint8Array;
  thisUpdate: Date;
  nextUpdate?: Date;
  /** RFC 5280 §5.2.3 cRLNumber, as a decimal string. */
  number?: string;
  /** Serial numbers (hex of the INTEGER content, as CertInfo.serial) that are revoked. */
  revoked: Set<string>;
  /** RFC 5280 §5.2.4: a delta CRL, which the agent does not use on its own. */
  delta: boolean;
  /** RFC 5280 §5.2.5 issuingDistributionPoint fullName URIs (a partitioned CRL's scope), if any. */
  scopeUrls?: string[];
  tbs: Uint8Array;
  sigAlgOid: string;
  sigAlgParams?: Uint8Array;
  signature: Uint8Array;
}

function readTime(buf: Uint8Array, t: der.Tlv): Date {
  const s = Buffer.from(der.content(buf, t)).toString('latin1');
  const m = t.tag === der.TAG.UTCTime ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw new ProblemError('bad_request', `CRL: bad time "${s}"`);
  let year = Number(m[1]);
  if (t.tag === der.TAG.UTCTime) year += year < 50 ? 2000 : 1900; // RFC 5280 §4.1.2.5.1
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

const isTime = (t: der.Tlv | undefined) => !!t && (t.tag === der.TAG.UTCTime || t.tag === der.TAG.GeneralizedTime);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function oidText(buf: Uint8Array, t: der.Tlv): string {
  const b = der.content(buf, t);
  const arcs: number[] = [];
  let v = 0;
  for (const x of b) {
    v = v * 128 + (x & 0x7f);
    if (!(x & 0x80)) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}

/** Parses a DER CRL (RFC 5280 §5.1). Throws bad_request on anything malformed. */
export function parseCrl(input: Uint8Array): ParsedCrl {
  const buf = input[0] === 0x30 ? input : pemDecodeAll(Buffer.from(input).toString('latin1')).find((b) => b.label === 'X509 CRL')?.der;
  if (!buf) throw new ProblemError('bad_request', 'not a DER or PEM CRL');
  const top = der.expectSingleTlv(buf, 'CRL');
  const [tbsT, algT, sigT] = der.readChildren(buf, top);
  if (!tbsT || !algT || !sigT || tbsT.tag !== der.TAG.SEQUENCE || sigT.tag !== der.TAG.BIT_STRING) throw new ProblemError('bad_request', 'not a CertificateList');
  const kids = der.readChildren(buf, tbsT);
  let i = 0;
  if (kids[i]?.tag === der.TAG.INTEGER) i++; // version v2
  i++; // signature AlgorithmIdentifier (must equal the outer one)
  const issuerT = kids[i++];
  const thisT = kids[i++];
  if (!issuerT || !isTime(thisT)) throw new ProblemError('bad_request', 'CRL: no issuer or thisUpdate');
  const nextT = isTime(kids[i]) ? kids[i++] : undefined;
  const revoked = new Set<string>();
  if (kids[i]?.tag === der.TAG.SEQUENCE) {
    for (const entry of der.readChildren(buf, kids[i++])) {
      const serialT = der.readTlv(buf, entry.contentStart);
      revoked.add(hex(der.content(buf, serialT)));
    }
  }
  let number: string | undefined;
  let delta = false;
  let scopeUrls: string[] | undefined;
  if (kids[i]?.tag === 0xa0) {
    const [exts] = der.readChildren(buf, kids[i]);
    for (const ext of der.readChildren(buf, exts)) {
      const parts = der.readChildren(buf, ext);
      const oid = oidText(buf, parts[0]);
      const valueT = parts[parts.length - 1];
      const inner = der.readTlv(buf, valueT.contentStart);
      if (oid === '2.5.29.20') number = BigInt(`0x${hex(der.content(buf, inner)) || '0'}`).toString();
      else if (oid === '2.5.29.27') delta = true;
      else if (oid === '2.5.29.28') scopeUrls = idpUrls(buf, inner);
    }
  }
  const algKids = der.readChildren(buf, algT);
  return {
    der: buf,
    issuerDer: der.slice(buf, issuerT).slice(),
    thisUpdate: readTime(buf, thisT),
    nextUpdate: nextT ? readTime(buf, nextT) : undefined,
    number,
    revoked,
    delta,
    scopeUrls,
    tbs: der.slice(buf, tbsT),
    sigAlgOid: oidText(buf, algKids[0]),
    sigAlgParams: algKids[1] && algKids[1].tag !== der.TAG.NULL ? der.slice(buf, algKids[1]) : undefined,
    signature: der.content(buf, sigT).subarray(1),
  };
}

/** IssuingDistributionPoint ::= SEQUENCE { distributionPoint [0] { fullName [0] GeneralNames } ... } */
function idpUrls(buf: Uint8Array, idp: der.Tlv): string[] {
  const out: string[] = [];
  const dp = der.readChildren(buf, idp).find((t) => t.tag === 0xa0);
  if (!dp) return out;
  const full = der.readChildren(buf, dp).find((t) => t.tag === 0xa0);
  if (!full) return out;
  for (const gn of der.readChildren(buf, full)) if (gn.tag === 0x86) out.push(Buffer.from(der.content(buf, gn)).toString('latin1'));
  return out;
}

/** Whether `crl` was signed by `issuer` (same name, signature verifies with its key). */
export function crlSignedBy(crl: ParsedCrl, issuer: CertInfo): boolean {
  if (!sameBytes(crl.issuerDer, issuer.subjectDer)) return false;
  try {
    return verifySignature(crl.sigAlgOid, crl.sigAlgParams, publicKeyFromSpki(issuer.spki), crl.tbs, crl.signature);
  } catch {
    return false;
  }
}
