/**
 * Encodes a TBSCertificate (RFC 5280 §4.1) from DER pieces and signs it.
 * Names and the SPKI are copied byte for byte; extension values come from
 * extensions.ts. This is the one place certificates are assembled, so a
 * faster template encoder can replace it without touching the issuer.
 */
import * as der from '../asn1/der.js';
import type { Signer } from '../keys/key_store.js';
import { signatureAlgorithmFor } from './algorithms.js';
import { encodeExtension, type Ext } from './extensions.js';

export interface CertificateTemplate {
  /** Big-endian content octets of a positive INTEGER. */
  serial: Uint8Array;
  /** DER Name of the issuer: the issuer certificate's subject, exactly. */
  issuer: Uint8Array;
  /** DER Name of the subject. */
  subject: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** DER SubjectPublicKeyInfo. */
  spki: Uint8Array;
  extensions: Ext[];
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/**
 * RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, always
 * in Zulu with whole seconds.
 */
export function encodeTime(d: Date): Uint8Array {
  const y = d.getUTCFullYear();
  const rest = `${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  const ascii = (s: string) => new Uint8Array(Buffer.from(s, 'ascii'));
  if (y >= 1950 && y < 2050) return der.tlv(der.TAG.UTCTime, ascii(`${pad(y % 100)}${rest}`));
  return der.tlv(der.TAG.GeneralizedTime, ascii(`${pad(y, 4)}${rest}`));
}

export function encodeTbs(t: CertificateTemplate, signatureAlgorithm: Uint8Array): Uint8Array {
  const parts = [
    der.ctx(0, true, der.integer(2)), // version v3
    der.integer(t.serial),
    signatureAlgorithm,
    t.issuer,
    der.seq(encodeTime(t.notBefore), encodeTime(t.notAfter)),
    t.subject,
    t.spki,
  ];
  if (t.extensions.length) parts.push(der.ctx(3, true, der.seq(...t.extensions.map(encodeExtension))));
  return der.seq(...parts);
}

/** Signs the template with `signer`; returns the certificate DER. */
export async function signCertificate(t: CertificateTemplate, signer: Signer): Promise<Uint8Array> {
  const alg = signatureAlgorithmFor(signer.key);
  const tbs = encodeTbs(t, alg.algorithmIdentifier);
  const signature = await signer.sign(tbs, alg.hash);
  return der.seq(tbs, alg.algorithmIdentifier, der.bitString(signature));
}
