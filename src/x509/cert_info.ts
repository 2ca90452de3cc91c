/**
 * Reads what fleetpki needs from a certificate: names, validity, keys and the
 * extensions that constrain issuance under it. Raw DER slices are kept where
 * bytes must be copied exactly (the issuer Name, the SPKI).
 */
import { createHash } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  KeyUsage,
  NameConstraints,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_nameConstraints,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import * as der from '../asn1/der.js';
import { rethrowAs } from '../errors.js';
import { keyInfoOf, publicKeyFromSpki, type KeyInfo } from './algorithms.js';
import { fromGeneralName, type San } from './general_names.js';
import { formatDn, nameAttributes, type DnAttribute } from './names.js';
import { readCertificateFast } from './cert_reader.js';
import { derFromPemOrDer } from './pem.js';

export interface CertInfo {
  der: Uint8Array;
  serial: string;
  subject: DnAttribute[];
  subjectText: string;
  issuerText: string;
  /** Exact DER of the subject Name: becomes the issuer of certificates it signs. */
  subjectDer: Uint8Array;
  issuerDer: Uint8Array;
  spki: Uint8Array;
  spkiSha256: string;
  key: KeyInfo;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  pathLen?: number;
  keyUsage: string[];
  extendedKeyUsage: string[];
  sans: San[];
  ski?: Uint8Array;
  aki?: Uint8Array;
  nameConstraints?: { permitted: Array<{ tag: number; value: Uint8Array }>; excluded: Array<{ tag: number; value: Uint8Array }> };
  signatureAlgorithm: string;
  fingerprintSha256: string;
  /** Every extension: OID, criticality, DER value. */
  extensions: Array<{ oid: string; critical: boolean; value: Uint8Array }>;
  /** The raw TBSCertificate and signature, for verification. */
  tbs: Uint8Array;
  signature: Uint8Array;
}

export function serialHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/**
 * Reads a PEM or DER certificate; bad_request if it is not one. The common
 * shape is read by a direct DER walk (cert_reader.ts), the rest by the
 * ASN.1 library.
 */
export function parseCertificate(input: Uint8Array | string): CertInfo {
  const certDer = derFromPemOrDer(input, ['CERTIFICATE']);
  return readCertificateFast(certDer) ?? rethrowAs('bad_request', 'not a valid X.509 certificate', () => parseDer(certDer));
}

/** The library's reading, always (the reference cert_reader.ts is tested against). */
export function parseCertificateWithLibrary(input: Uint8Array | string): CertInfo {
  const certDer = derFromPemOrDer(input, ['CERTIFICATE']);
  return rethrowAs('bad_request', 'not a valid X.509 certificate', () => parseDer(certDer));
}

function parseDer(certDer: Uint8Array): CertInfo {
  const outer = der.expectSingleTlv(certDer, 'certificate');
  const [tbsTlv, , sigTlv] = der.readChildren(certDer, outer);
  const tbsKids = der.readChildren(certDer, tbsTlv);
  // TBSCertificate: [0] version?, serial, signature, issuer, validity, subject, spki, ...
  const off = tbsKids[0].tag === 0xa0 ? 1 : 0;
  const serialTlv = tbsKids[off];
  const issuerDer = der.slice(certDer, tbsKids[off + 2]).slice();
  const subjectDer = der.slice(certDer, tbsKids[off + 4]).slice();
  const spki = der.slice(certDer, tbsKids[off + 5]).slice();

  const cert = AsnConvert.parse(certDer, Certificate);
  const tbs = cert.tbsCertificate;
  const exts = tbs.extensions ?? [];
  const find = (oid: string) => exts.find((e) => e.extnID === oid);
  const value = <T>(oid: string, type: new () => T): T | undefined => {
    const e = find(oid);
    return e ? AsnConvert.parse(e.extnValue, type) : undefined;
  };

  const bc = value(id_ce_basicConstraints, BasicConstraints);
  const ku = value(id_ce_keyUsage, KeyUsage);
  const eku = value(id_ce_extKeyUsage, ExtendedKeyUsage);
  const san = value(id_ce_subjectAltName, SubjectAlternativeName);
  const ski = value(id_ce_subjectKeyIdentifier, SubjectKeyIdentifier);
  const aki = value(id_ce_authorityKeyIdentifier, AuthorityKeyIdentifier);
  const ncExt = find(id_ce_nameConstraints);

  const subject = nameAttributes(tbs.subject);
  return {
    der: certDer,
    serial: serialHex(der.content(certDer, serialTlv)),
    subject,
    subjectText: formatDn(subject),
    issuerText: formatDn(nameAttributes(tbs.issuer)),
    subjectDer,
    issuerDer,
    spki,
    spkiSha256: createHash('sha256').update(spki).digest('hex'),
    key: keyInfoOf(publicKeyFromSpki(spki)),
    notBefore: tbs.validity.notBefore.getTime(),
    notAfter: tbs.validity.notAfter.getTime(),
    isCa: bc?.cA ?? false,
    pathLen: bc?.pathLenConstraint,
    // The library spells cRLSign "crlSign"; keep RFC 5280's names throughout.
    keyUsage: ku ? ku.toJSON().map((u) => (u === 'crlSign' ? 'cRLSign' : u)) : [],
    extendedKeyUsage: eku ? [...eku] : [],
    sans: (san ? [...san] : []).map(fromGeneralName).filter((s): s is San => s.type !== 'other'),
    ski: ski ? new Uint8Array(ski.buffer) : undefined,
    aki: aki?.keyIdentifier ? new Uint8Array(aki.keyIdentifier.buffer) : undefined,
    nameConstraints: ncExt ? readNameConstraints(new Uint8Array(ncExt.extnValue.buffer)) : undefined,
    signatureAlgorithm: cert.signatureAlgorithm.algorithm,
    fingerprintSha256: createHash('sha256').update(certDer).digest('hex'),
    extensions: Array.from(exts, (e) => ({ oid: e.extnID, critical: e.critical, value: new Uint8Array(e.extnValue.buffer) })),
    tbs: der.slice(certDer, tbsTlv).slice(),
    signature: der.content(certDer, sigTlv).slice(1),
  };
}

/** Keeps name constraints as raw (tag, value) pairs; lint.ts interprets them. */
function readNameConstraints(value: Uint8Array): CertInfo['nameConstraints'] {
  // Validate the structure with the library, then walk the DER directly.
  AsnConvert.parse(value, NameConstraints);
  const out = { permitted: [] as Array<{ tag: number; value: Uint8Array }>, excluded: [] as Array<{ tag: number; value: Uint8Array }> };
  const top = der.readTlv(value, 0);
  for (const subtrees of der.readChildren(value, top)) {
    const list = subtrees.tag === 0xa0 ? out.permitted : out.excluded;
    for (const subtree of der.readChildren(value, subtrees)) {
      const [base] = der.readChildren(value, subtree);
      list.push({ tag: base.tag & 0x1f, value: der.content(value, base).slice() });
    }
  }
  return out;
}
