/**
 * "Certs-only" CMS (RFC 5652 SignedData with no signers, RFC 8551 §3.2.2
 * smime-type=certs-only): how EST carries certificates (RFC 7030 §4.1.3,
 * §4.2.3). Written in DER directly; it is a few fixed fields around the
 * certificates.
 */
import { Buffer } from 'node:buffer';
import * as der from '../asn1/der.js';

const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_DATA = '1.2.840.113549.1.7.1';

/** DER SET OF: elements sorted by their encodings (X.690 §11.6). */
function setOf(items: Uint8Array[], tag: number): Uint8Array {
  const sorted = [...items].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return der.tlv(tag, ...(sorted.length ? sorted : [new Uint8Array(0)]));
}

export function certsOnly(certs: readonly Uint8Array[]): Uint8Array {
  const signedData = der.seq(
    der.integer(1), // CMSVersion 1: no attribute certificates, only id-data content
    der.tlv(der.TAG.SET, new Uint8Array(0)), // digestAlgorithms: none
    der.seq(der.oid(OID_DATA)), // encapContentInfo without content
    setOf([...certs], 0xa0), // certificates [0] IMPLICIT CertificateSet
    der.tlv(der.TAG.SET, new Uint8Array(0)), // signerInfos: none
  );
  return der.seq(der.oid(OID_SIGNED_DATA), der.ctx(0, true, signedData));
}
