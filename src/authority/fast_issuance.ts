/**
 * The issuance fast path: a certificate of a common end-entity profile from
 * a P-256 CSR, without the ASN.1 library. The authority precomputes an
 * IssuancePlan per (profile, CA): the issuer Name, the signature algorithm
 * and every constant extension, DER-encoded once by the library path's own
 * builders (extensions.ts). Per certificate only the serial, the validity,
 * the subject, the SPKI, the SKI and the SAN are written, into the same
 * TBSCertificate layout cert_builder.ts produces, byte for byte
 * (test/unit/fast_issuance.test.ts checks it against the library path).
 *
 * Pure and synchronous: it runs on the main thread or in a worker thread
 * (issuance_pool.ts). Anything outside the narrow shape comes back as
 * `fallback`, and the authority issues it through the library path.
 */
import { createHash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import * as der from '../asn1/der.js';
import { isProblem, type ProblemCode } from '../errors.js';
import { encodeTime } from '../x509/cert_builder.js';
import { readCsrFast } from '../x509/csr_reader.js';
import { parseCidr } from '../x509/extensions.js';
import { formatSan, normaliseSan, type San } from '../x509/general_names.js';
import { DN_ATTRIBUTES, formatDn, type DnAttribute } from '../x509/names.js';
import { checkKey, checkSans, checkSubject, dedupeSans } from './policy.js';
import type { Profile } from './profiles.js';

/** What one (profile, CA) pair puts in every certificate. Structured-cloneable: it is sent to worker threads once. */
export interface IssuancePlan {
  id: string;
  profileName: string;
  profile: Profile;
  caSpkiSha256: string;
  /** DER AlgorithmIdentifier of the CA's signature (ecdsa-with-SHA256 ...). */
  signatureAlgorithm: Uint8Array;
  hash: 'sha256' | 'sha384' | 'sha512';
  /** The issuer CA's subject Name, DER, exactly. */
  issuerDer: Uint8Array;
  /** Encoded Extensions before the SKI (basicConstraints, keyUsage, extKeyUsage). */
  extHead: Uint8Array;
  /** The encoded authorityKeyIdentifier Extension. */
  akiExt: Uint8Array;
  /** Encoded Extensions after the SAN (CRL distribution points, AIA, freshestCRL, ocsp-nocheck). */
  extTail: Uint8Array;
  /** The CA key when it may be used by threads of this process (software keys); absent: the caller signs the TBS. */
  key?: KeyObject;
}

export interface FastRequest {
  /** DER of the PKCS#10 request. */
  csr: Uint8Array;
  subject?: DnAttribute[];
  sans?: San[];
  serial: Uint8Array;
  notBefore: number;
  notAfter: number;
  /** The library path refuses the validity after the CSR checks; so does this path. */
  validityProblem?: { code: ProblemCode; detail: string };
}

export type FastResult =
  | {
      kind: 'ok';
      /** The certificate DER; absent when the plan holds no key, and then `tbs` is to be signed. */
      der?: Uint8Array;
      tbs?: Uint8Array;
      serial: string;
      subjectText: string;
      sans: string[];
      spkiSha256: string;
    }
  | { kind: 'fallback'; reason: string }
  | { kind: 'problem'; code: ProblemCode; detail: string; extra?: Record<string, unknown> };

const fallback = (reason: string): FastResult => ({ kind: 'fallback', reason });

// The DER of one (tag, length) header: the only writer this path needs.
function header(tag: number, len: number): Buffer {
  if (len < 0x80) return Buffer.from([tag, len]);
  if (len < 0x100) return Buffer.from([tag, 0x81, len]);
  if (len < 0x10000) return Buffer.from([tag, 0x82, len >> 8, len & 0xff]);
  return Buffer.from([tag, 0x83, len >> 16, (len >> 8) & 0xff, len & 0xff]);
}

function wrap(tag: number, parts: Uint8Array[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  return Buffer.concat([header(tag, len), ...parts]);
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
const OID_DER = new Map(Object.entries(DN_ATTRIBUTES).map(([k, v]) => [k, der.oid(v)]));

/** names.ts encodeName, for the attributes it encodes without complaint; undefined otherwise. */
function encodeSubject(attrs: readonly DnAttribute[]): Buffer | undefined {
  const rdns: Buffer[] = [];
  for (const a of attrs) {
    const oid = OID_DER.get(a.type);
    if (!oid) return undefined;
    let tag: number;
    if (a.type === 'emailAddress' || a.type === 'DC') {
      if (!/^[\x00-\x7f]*$/.test(a.value)) return undefined;
      tag = 0x16;
    } else if (a.type === 'C' || a.type === 'serialNumber') {
      if (!PRINTABLE.test(a.value)) return undefined;
      tag = 0x13;
    } else {
      tag = PRINTABLE.test(a.value) ? 0x13 : 0x0c;
    }
    const value = Buffer.from(a.value, tag === 0x0c ? 'utf8' : 'latin1');
    rdns.push(wrap(0x31, [wrap(0x30, [oid, header(tag, value.length), value])]));
  }
  return wrap(0x30, rdns);
}

const SAN_TAG: Record<San['type'], number> = { email: 0x81, dns: 0x82, uri: 0x86, ip: 0x87 };
const SKI_OID = der.oid('2.5.29.14');
const SAN_OID = der.oid('2.5.29.17');
const CRITICAL = Buffer.from([0x01, 0x01, 0xff]);

function sanExtension(sans: readonly San[], critical: boolean): Buffer {
  const names = sans.map((s) => {
    const v = s.type === 'ip' ? parseCidr(s.value).address : Buffer.from(s.value, 'latin1');
    return Buffer.concat([header(SAN_TAG[s.type], v.length), v]);
  });
  const value = wrap(0x30, names);
  return wrap(0x30, critical ? [SAN_OID, CRITICAL, wrap(0x04, [value])] : [SAN_OID, wrap(0x04, [value])]);
}

/** RFC 5280 §4.2.1.2 method (1), as extensions.ts keyIdentifierOf: SHA-1 of the key bits (a P-256 SPKI's last 65 octets). */
function skiExtension(spki: Uint8Array): Buffer {
  const ski = createHash('sha1').update(spki.subarray(spki.length - 65)).digest();
  return wrap(0x30, [SKI_OID, wrap(0x04, [wrap(0x04, [ski])])]);
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }. */
export function assembleCertificate(tbs: Uint8Array, signatureAlgorithm: Uint8Array, signature: Uint8Array): Uint8Array {
  return new Uint8Array(wrap(0x30, [tbs, signatureAlgorithm, header(0x03, signature.length + 1), Buffer.from([0]), signature]));
}

/**
 * Checks and, with a key in the plan, signs one request. Refusals come back
 * as `problem` (the same codes and messages as the library path's), shapes
 * this path does not write as `fallback`.
 */
export function issueFast(plan: IssuancePlan, req: FastRequest): FastResult {
  try {
    const csr = readCsrFast(req.csr);
    if (!csr) return fallback('csr shape');
    const profile = plan.profile;
    checkKey(profile, plan.profileName, csr, plan.caSpkiSha256);
    const subject = req.subject ?? csr.subject;
    checkSubject(profile, plan.profileName, subject);
    const sans = dedupeSans((req.sans ?? csr.sans).map(normaliseSan));
    checkSans(profile, plan.profileName, sans);
    if (req.validityProblem) return { kind: 'problem', code: req.validityProblem.code, detail: req.validityProblem.detail };
    // An empty subject needs a critical SAN; without one the library path's lint refuses it.
    if (subject.length === 0 && sans.length === 0) return fallback('empty subject without names');
    if (sans.some((s) => s.type === 'ip' && s.value.includes(':'))) return fallback('IPv6 name');
    const subjectDer = encodeSubject(subject);
    if (!subjectDer) return fallback('subject encoding');

    const exts: Uint8Array[] = [plan.extHead, skiExtension(csr.spki), plan.akiExt];
    if (sans.length) exts.push(sanExtension(sans, subject.length === 0));
    exts.push(plan.extTail);
    const validity = wrap(0x30, [encodeTime(new Date(req.notBefore)), encodeTime(new Date(req.notAfter))]);
    const serial = der.integer(req.serial);
    const tbs = wrap(0x30, [
      Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]),
      serial,
      plan.signatureAlgorithm,
      plan.issuerDer,
      validity,
      subjectDer,
      csr.spki,
      wrap(0xa3, [wrap(0x30, exts)]),
    ]);
    const out: FastResult = {
      kind: 'ok',
      serial: Buffer.from(der.content(serial, der.readTlv(serial, 0))).toString('hex'),
      subjectText: formatDn(subject),
      sans: sans.map(formatSan),
      spkiSha256: csr.spkiSha256,
    };
    if (plan.key) out.der = assembleCertificate(tbs, plan.signatureAlgorithm, new Uint8Array(cryptoSign(plan.hash, tbs, { key: plan.key, dsaEncoding: 'der' })));
    else out.tbs = tbs;
    return out;
  } catch (e) {
    if (isProblem(e)) return { kind: 'problem', code: e.code, detail: e.detail, extra: e.extra };
    throw e;
  }
}
